"""Instance-id range strings such as ``0-5,10,115-120`` (contract §3.1 advancedRanges)."""

from collections.abc import Iterable

from calor.domain.errors import BadRequest

MAX_INSTANCES = 100_000


def parse_ranges(text: str, limit: int = MAX_INSTANCES) -> list[int]:
    """Expand a range string into sorted unique instance ids."""
    ids: set[int] = set()
    parts = [p.strip() for p in text.split(",")]
    if not text.strip():
        raise BadRequest("advancedRanges is empty: give ids such as '0-5,10'")
    for part in parts:
        if not part:
            raise BadRequest(f"advancedRanges {text!r} has an empty element")
        low_text, sep, high_text = part.partition("-")
        try:
            low = int(low_text)
            high = int(high_text) if sep else low
        except ValueError:
            raise BadRequest(
                f"advancedRanges element {part!r} is not a number or a range like '3-7'"
            ) from None
        if low < 0 or high < low:
            raise BadRequest(f"advancedRanges element {part!r} must be n or n-m with 0 <= n <= m")
        if len(ids) + (high - low + 1) > limit:
            raise BadRequest(f"advancedRanges {text!r} gives more than {limit} instances")
        ids.update(range(low, high + 1))
    return sorted(ids)


def format_ranges(ids: Iterable[int]) -> str:
    """Compress ids into the shortest range string (``[0,1,2,5]`` → ``0-2,5``)."""
    out: list[str] = []
    start: int | None = None
    prev: int | None = None
    for i in sorted(set(ids)):
        if start is None:
            start = prev = i
        elif prev is not None and i == prev + 1:
            prev = i
        else:
            out.append(str(start) if start == prev else f"{start}-{prev}")
            start = prev = i
    if start is not None:
        out.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(out)
