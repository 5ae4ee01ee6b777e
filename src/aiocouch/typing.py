"""Type aliases for JSON values, as aiocouch 4.0.1 names them."""

from typing import Any, Union

__all__ = ["Json", "JsonDict", "JsonList"]

JsonDict = dict[str, Any]
JsonList = list[Any]
Json = Union[JsonDict, JsonList]
