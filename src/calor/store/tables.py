"""The schema. Reads are served by the indexes declared here, never by scans in Python."""

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)

from calor.domain.states import InstanceState

# cores held, a fraction for the slots of a pool node split into slots: REAL on PostgreSQL;
# SQLite's INTEGER affinity already keeps a non-integral number as REAL (migration 0013)
CORES = Integer().with_variant(Float(), "postgresql")

metadata = MetaData()

# tasks' count of instances in each state (kept by the triggers of migration 0015)
COUNT_COLUMNS: dict[InstanceState, str] = {
    InstanceState.WAITING: "n_waiting",
    InstanceState.QUEUED: "n_queued",
    InstanceState.DISPATCHED: "n_dispatched",
    InstanceState.EXECUTING: "n_executing",
    InstanceState.UPLOADING: "n_uploading",
    InstanceState.SUCCESS: "n_success",
    InstanceState.FAILURE: "n_failure",
    InstanceState.CANCELLED: "n_cancelled",
}

# SQLite only auto-increments INTEGER PRIMARY KEY, PostgreSQL wants BIGINT for large tables
Id = BigInteger().with_variant(Integer(), "sqlite")

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    # the token is derived from this and the server's secret key (services/users.py); null for
    # tokens made before that, which must be rotated to use the S3 gateway
    Column("token_nonce", String(32), nullable=True),
    Column("created_at", DateTime, nullable=False),
    # kept in step by every insert and delete of tasks (store/tasks.py), so that the per-user
    # limit is one row read however many tasks are stored
    Column("task_count", BigInteger, nullable=False, server_default="0"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("shortname", String(255), nullable=False),
    Column("profile", String(128), nullable=False),
    Column("pool_uuid", String(36)),
    Column("job_uuid", String(36)),
    Column("project_uuid", String(36)),
    Column("result_bucket", String(255)),
    Column("state", String(32), nullable=False),
    Column("previous_state", String(32), nullable=False),
    Column("creation_date", DateTime, nullable=False),
    Column("state_transition_time", DateTime, nullable=False),
    Column("previous_state_transition_time", DateTime, nullable=False),
    Column("last_modified", DateTime, nullable=False),
    Column("end_date", DateTime),
    Column("instance_count", Integer, nullable=False),
    Column("advanced_ranges", Text),
    # per instance: a pool slot's share of its node may be a fraction (migration 0013)
    Column("cores", CORES, nullable=False),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("progress", Float, nullable=False, default=0.0),
    Column("running_instance_count", Integer, nullable=False, default=0),
    Column("running_core_count", Integer, nullable=False, default=0),
    Column("execution_time_sec", Float, nullable=False, default=0.0),
    Column("wall_time_sec", Float, nullable=False, default=0.0),
    # the totals of its instances, kept by triggers on instances (migration 0015): deriving
    # the task's state reads these and its few active instances, never all of them
    Column("first_start", DateTime),
    Column("last_end", DateTime),
    *(Column(name, Integer, nullable=False, server_default="0") for name in COUNT_COLUMNS.values()),
    # each instance's progress, 100 for a final one; the wall time of every ended attempt
    Column("progress_sum", Float, nullable=False, server_default="0"),
    Column("wall_sum", Float, nullable=False, server_default="0"),
    # the active instances that have started, and the sum of their starts (ms since
    # domain.task.STARTS_EPOCH): the execution time so far without reading them (0016)
    Column("running_started", Integer, nullable=False, server_default="0"),
    Column("started_ms_sum", BigInteger, nullable=False, server_default="0"),
    Column("results_count", Integer, nullable=False, default=0),
    Column("retries_used", Integer, nullable=False, default=0),
    Column("max_per_instance_retries", Integer),
    Column("max_total_retries", Integer),
    Column("errors", JSON, nullable=False),
    # submitted fields echoed back unchanged (constants, labels, buckets, constraints...)
    Column("document", JSON, nullable=False),
    # periodic snapshots: every snapshot_interval seconds (0: none), next one due at
    # snapshot_due, with snapshot_config's whitelist, blacklist, bucket and bucketPrefix
    Column("snapshot_interval", Integer, nullable=False, server_default="0"),
    Column("snapshot_due", DateTime),
    Column("snapshot_config", JSON),
    # the job it belongs to (its uuid is job_uuid); deleting a job deletes its tasks (in
    # store/jobs.py, which keeps users.task_count in step, so no cascade here)
    Column("job_id", Id),
    # dependencies (a job with useDependencies): null when it has none, else the
    # domain.dependencies.DependencyState value
    Column("dependency_state", String(40)),
    # maxTimeQueueSeconds: instances never dispatched by queue_due fail (null: no deadline);
    # the clock starts when the instances are queued (after the dependencies are met)
    Column("max_queue_sec", Integer),
    Column("queue_due", DateTime),
    # autoDeleteOnCompletion: the task is deleted this long after it ends (null: never) and
    # once it has ended, when (delete_due)
    Column("completion_ttl_sec", Float),
    Column("delete_due", DateTime),
    # the pool it runs on (its uuid is pool_uuid)
    Column("pool_id", Id),
    # set on a pool's hidden slot task (its instances are the pool's slots), which no task
    # listing, count or lookup ever shows
    Column("slots_of", Id),
    Index("ix_tasks_user_id_id", "user_id", "id"),
    Index("ix_tasks_user_state_id", "user_id", "state", "id"),
    Index("ix_tasks_user_shortname", "user_id", "shortname", unique=True),
    Index("ix_tasks_user_name_id", "user_id", "name", "id"),
    Index("ix_tasks_snapshot_due", "snapshot_due"),
    Index("ix_tasks_job_id_id", "job_id", "id"),
    Index("ix_tasks_job_state", "job_id", "state"),
    Index("ix_tasks_queue_due", "queue_due"),
    Index("ix_tasks_delete_due", "delete_due"),
    Index("ix_tasks_pool_id", "pool_id"),
    # never reuse an id: pagination tokens are ids
    sqlite_autoincrement=True,
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("task_id", Id, ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    Column("trigger_date", DateTime, nullable=False),
    Column("last_update", DateTime, nullable=False),
    Column("config", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    # instances whose upload has not reported yet
    Column("pending", Integer, nullable=False),
    Column("size_to_upload", BigInteger, nullable=False, server_default="0"),
    Column("transferred_size", BigInteger, nullable=False, server_default="0"),
    Column("error", Text),
    Index("ix_snapshots_task_id", "task_id"),
)

task_tags = Table(
    "task_tags",
    metadata,
    Column("task_id", Id, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(255), primary_key=True),
    Column("user_id", Id, nullable=False),
    Index("ix_task_tags_user_tag_task", "user_id", "tag", "task_id"),
)

# what each task of a job waits for; depends_on_id is no foreign key: a dependency may be
# deleted before its dependants settle, which makes them unfulfillable, not invalid
task_dependencies = Table(
    "task_dependencies",
    metadata,
    Column("task_id", Id, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
    Column("depends_on_id", Id, primary_key=True),
    Column("depends_on_uuid", String(36), nullable=False),
    # lower-case final states accepted (null: any), and whether it came from advancedDependsOn
    Column("conditions", JSON),
    Column("advanced", Boolean, nullable=False),
    Column("position", Integer, nullable=False),
    Index("ix_task_dependencies_depends_on", "depends_on_id"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("shortname", String(255), nullable=False),
    Column("pool_uuid", String(36)),
    Column("state", String(32), nullable=False),
    Column("previous_state", String(32), nullable=False),
    Column("creation_date", DateTime, nullable=False),
    Column("state_transition_time", DateTime, nullable=False),
    Column("previous_state_transition_time", DateTime, nullable=False),
    Column("last_modified", DateTime, nullable=False),
    Column("end_date", DateTime),
    Column("use_dependencies", Boolean, nullable=False),
    # maxWallTime: the job is terminated at wall_due (null: never)
    Column("wall_due", DateTime),
    # autoDeleteOnCompletion: deleted completion_ttl_sec after it completes, at delete_due
    Column("completion_ttl_sec", Float),
    Column("delete_due", DateTime),
    Column("document", JSON, nullable=False),
    Index("ix_jobs_user_id_id", "user_id", "id"),
    Index("ix_jobs_user_shortname", "user_id", "shortname", unique=True),
    Index("ix_jobs_wall_due", "wall_due"),
    Index("ix_jobs_delete_due", "delete_due"),
    sqlite_autoincrement=True,
)

pools = Table(
    "pools",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("shortname", String(255), nullable=False),
    Column("profile", String(128), nullable=False),
    Column("state", String(32), nullable=False),
    Column("previous_state", String(32), nullable=False),
    Column("creation_date", DateTime, nullable=False),
    Column("state_transition_time", DateTime, nullable=False),
    Column("previous_state_transition_time", DateTime, nullable=False),
    Column("last_modified", DateTime, nullable=False),
    Column("end_date", DateTime),
    # the hidden task whose instances are the slots
    Column("slots_task_id", Id, nullable=False),
    Column("cores", CORES, nullable=False),  # per slot: its share of the node's cores
    # sized by a policy (elasticProperty or scaling) rather than instanceCount alone
    Column("elastic", Boolean, nullable=False),
    Column("closing", Boolean, nullable=False),
    # the scaling policies are looked at every resize period, next at resize_due
    Column("resize_period_sec", Float, nullable=False),
    Column("resize_due", DateTime),
    Column("active_policy", String(255)),
    Column("completion_ttl_sec", Float),
    Column("delete_due", DateTime),
    # submitted fields echoed back (constants, buckets, elastic settings, scaling...)
    Column("document", JSON, nullable=False),
    Index("ix_pools_user_id_id", "user_id", "id"),
    Index("ix_pools_user_shortname", "user_id", "shortname", unique=True),
    Index("ix_pools_resize_due", "resize_due"),
    Index("ix_pools_delete_due", "delete_due"),
    sqlite_autoincrement=True,
)

pool_tags = Table(
    "pool_tags",
    metadata,
    Column("pool_id", Id, ForeignKey("pools.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(255), primary_key=True),
    Column("user_id", Id, nullable=False),
    Index("ix_pool_tags_user_tag_pool", "user_id", "tag", "pool_id"),
)

job_tags = Table(
    "job_tags",
    metadata,
    Column("job_id", Id, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(255), primary_key=True),
    Column("user_id", Id, nullable=False),
    Index("ix_job_tags_user_tag_job", "user_id", "tag", "job_id"),
)

instances = Table(
    "instances",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("task_id", Id, ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    Column("instance_id", Integer, nullable=False),
    Column("state", String(32), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("progress", Float, nullable=False, default=0.0),
    Column("started_at", DateTime),
    Column("ended_at", DateTime),
    Column("wall_time_sec", Float, nullable=False, default=0.0),
    Column("cpu_time_sec", Float, nullable=False, default=0.0),
    Column("peak_memory_mb", Integer, nullable=False, default=0),
    Column("exit_code", Integer),
    Column("error", Text),
    Column("pid", Integer),
    Column("proc_start", Float),
    # of the download (while dispatched) or the upload (while uploading results), 0-100
    Column("transfer_progress", Float, nullable=False, server_default="0"),
    # "bucket/key" of each result object of the last attempt
    Column("results", JSON),
    # a pool slot, once prepared: idle or busy (domain.pool.SlotState), idle since when
    Column("slot_use", String(8)),
    Column("idle_since", DateTime),
    # an instance of a task on a pool: the slot (instance row) it runs in
    Column("slot_row_id", Id),
    Index("ix_instances_task_instance", "task_id", "instance_id", unique=True),
    Index("ix_instances_state_id", "state", "id"),
    Index("ix_instances_task_state", "task_id", "state"),
    # the engine looks for idle pool slots at every claim: few rows, found by this index
    Index("ix_instances_slot_use", "slot_use"),
    # a row id names an attempt to executors: one of a deleted task must never come back
    sqlite_autoincrement=True,
)

log_chunks = Table(
    "log_chunks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("task_id", Id, ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    Column("instance_id", Integer, nullable=False),
    Column("stream", SmallInteger, nullable=False),
    Column("data", Text, nullable=False),
    Index("ix_log_chunks_task_stream_id", "task_id", "stream", "id"),
)

# where each "fresh" read (POST .../stdout) stopped; instance_id -1 is the task-level cursor
log_cursors = Table(
    "log_cursors",
    metadata,
    Column("task_id", Id, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
    Column("stream", SmallInteger, primary_key=True),
    Column("instance_id", Integer, primary_key=True),
    Column("last_chunk_id", Id, nullable=False),
)

# -- object storage (the S3 gateway): metadata here, bytes in a blob store (storage/blobs.py) ---

# S3 lists keys in the byte order of their UTF-8: SQLite compares text that way, PostgreSQL only
# with the "C" collation
Key = String(1024).with_variant(String(1024, collation="C"), "postgresql")

buckets = Table(
    "buckets",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # names are per user: two users may both have a bucket "input"
    Column("name", String(63), nullable=False),
    Column("created_at", DateTime, nullable=False),
    # kept in step with objects, for quotas and /info without a scan
    Column("object_count", BigInteger, nullable=False, server_default="0"),
    Column("bytes_used", BigInteger, nullable=False, server_default="0"),
    Index("ix_buckets_user_name", "user_id", "name", unique=True),
)

objects = Table(
    "objects",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("bucket_id", Id, ForeignKey("buckets.id", ondelete="CASCADE"), nullable=False),
    Column("key", Key, nullable=False),
    Column("blob_id", String(80), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("etag", String(80), nullable=False),  # without quotes
    Column("content_type", String(255), nullable=False),
    Column("last_modified", DateTime, nullable=False),
    Column("user_metadata", JSON, nullable=False),  # x-amz-meta-*
    Index("ix_objects_bucket_key", "bucket_id", "key", unique=True),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(64), primary_key=True),  # the UploadId
    Column("bucket_id", Id, ForeignKey("buckets.id", ondelete="CASCADE"), nullable=False),
    Column("key", Key, nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("user_metadata", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index("ix_uploads_bucket_key", "bucket_id", "key"),
)

upload_parts = Table(
    "upload_parts",
    metadata,
    Column("upload_id", String(64), ForeignKey("uploads.id", ondelete="CASCADE"), primary_key=True),
    Column("part_number", Integer, primary_key=True),
    Column("blob_id", String(80), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("etag", String(80), nullable=False),
    Column("last_modified", DateTime, nullable=False),
)

# blobs no object references (replaced, deleted, or still being written): their bytes are
# deleted once due (store/buckets.py), so that a crash at any point leaks nothing
doomed_blobs = Table(
    "doomed_blobs",
    metadata,
    Column("blob_id", String(80), primary_key=True),
    Column("since", DateTime, nullable=False),  # due: deletable from then on
)

# -- secrets (secrets-manager): values sealed with a key derived from the server key -------------

secrets = Table(
    "secrets",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # compared byte-wise (the "C" collation on PostgreSQL): a prefix is one range of the index
    Column("key", Key, nullable=False),
    # services/sealing.py: version, nonce, AES-GCM ciphertext bound to (user_id, key)
    Column("sealed", LargeBinary, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Index("ix_secrets_user_key", "user_id", "key", unique=True),
)

# -- usage (accounting): what each instance attempt consumed, and its roll-ups ---------------

# one row per ended attempt; no foreign key to tasks: billing outlives a deleted task
usage_records = Table(
    "usage_records",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, nullable=False),
    Column("task_uuid", String(36)),  # null for a pool's slot (the pool holds the cores)
    Column("pool_uuid", String(36)),  # the pool of a slot, or of a task that ran on one
    Column("job_uuid", String(36)),
    Column("name", String(255), nullable=False),  # the task's (or "slots of pool …")
    Column("instance_id", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("ended_at", DateTime, nullable=False),
    Column("cores", Float, nullable=False),
    Column("wall_time_sec", Float, nullable=False),
    Column("cpu_time_sec", Float, nullable=False),
    Column("core_seconds", Float, nullable=False),
    Column("peak_memory_mb", Integer, nullable=False),
    Column("energy_j", Float, nullable=False),  # IT energy
    Column("energy_measured", Boolean, nullable=False),  # RAPL (else estimated)
    Column("credits", Float, nullable=False),  # at the price of the day it ended
    Index("ix_usage_records_ended_at", "ended_at"),
    Index("ix_usage_records_user_ended_at", "user_id", "ended_at"),
)

# sums of usage_records per scope ("user", "task", "pool", "job") and key (the user's id or
# the object's uuid), kept in step with each insert: a task's or a user's figures are one
# row read however long the history is
usage_totals = Table(
    "usage_totals",
    metadata,
    Column("scope", String(8), primary_key=True),
    Column("key", String(36), primary_key=True),
    Column("user_id", Id, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("core_seconds", Float, nullable=False),
    Column("cpu_time_sec", Float, nullable=False),
    Column("wall_time_sec", Float, nullable=False),
    Column("peak_memory_mb", Integer, nullable=False),
    Column("energy_j", Float, nullable=False),
    Column("measured_energy_j", Float, nullable=False),
    Column("credits", Float, nullable=False),
)

# the credit budget an operator gave a user (calor admin budget set); none: no cap
credit_budgets = Table(
    "credit_budgets",
    metadata,
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("credits", Float, nullable=False),
    Column("set_at", DateTime, nullable=False),
)
