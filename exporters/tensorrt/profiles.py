"""Input shapes for the build: static where the ONNX (or the user) fixes them, an optimisation
profile (min, opt, max) where a dimension is symbolic (deploy.md §1, "Shapes and caches").
"""

from __future__ import annotations

from compressor.errors import ConfigError

Shape = tuple[int, ...]


def profile_shapes(inputs: dict[str, tuple[int, ...]], given: dict[str, list[int]] | None = None,
                   max_batch: int = 1) -> dict[str, tuple[Shape, Shape, Shape]]:
    """{input: (min, opt, max)} for every input, or {} when all are static and none is given.

    A given shape fixes its input (min = opt = max: static shapes are what latency work wants). A
    symbolic batch dimension (the first) not given spans 1..max_batch, tuned for max_batch; any
    other symbolic dimension must be given. An unnamed given shape ("") means the only input.
    """
    given = dict(given or {})
    if "" in given:
        if len(inputs) != 1:
            raise ConfigError(f"the model has {len(inputs)} inputs: name the one each --input-shape is for (NAME:SHAPE)")
        given[next(iter(inputs))] = given.pop("")
    unknown = sorted(set(given) - set(inputs))
    if unknown:
        raise ConfigError(f"--input-shape names {unknown[0]!r}, not an input of the model ({', '.join(inputs)})")
    if max_batch < 1:
        raise ConfigError(f"--max-batch must be at least 1, not {max_batch}")
    if not given and all(-1 not in dims for dims in inputs.values()):
        return {}
    profiles = {}
    for name, dims in inputs.items():
        if name in given:
            shape = tuple(given[name])
            if len(shape) != len(dims) or any(d != -1 and d != s for d, s in zip(dims, shape)):
                raise ConfigError(f"--input-shape {name}:{'x'.join(map(str, shape))} does not fit the input's "
                                  f"dimensions {_show(dims)}")
            profiles[name] = (shape, shape, shape)
            continue
        if -1 in dims[1:]:
            raise ConfigError(f"input {name!r} has symbolic dimensions {_show(dims)}: give --input-shape "
                              f"{name}:{'x'.join('N' if d == -1 else str(d) for d in dims)} with numbers")
        if dims and dims[0] == -1:
            profiles[name] = ((1, *dims[1:]), (max_batch, *dims[1:]), (max_batch, *dims[1:]))
        else:
            profiles[name] = (dims, dims, dims)
    return profiles


def _show(dims) -> str:
    return "x".join("?" if d == -1 else str(d) for d in dims)
