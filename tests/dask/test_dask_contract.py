"""The executor contract: the execution tests the local executor passes (tests/api), run again
with every instance on the Dask cluster (this package's ``server`` fixture)."""

from tests.api.conftest import reaper  # noqa: F401 - a fixture the imported tests use
from tests.api.test_execution import *  # noqa: F403 - the same tests, collected here again

# It fills "the machine" with one 2-core instance and expects the next to queue: a property of
# the local executor's capacity. On the cluster (3 cores over two workers) the placement tests
# of test_dask_executor.py say the same of workers.
del test_core_constraint_and_queueing  # type: ignore[name-defined]  # noqa: F821
