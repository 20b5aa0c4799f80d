"""Run configurations as code: which scoring variants make up a table.

A :class:`RunConfig` is a list of :class:`Variant` rows (method + :class:`DRCParams` + optional
backbone). Every variant of a run is scored on the *same* embeddings: media and texts are encoded
once per backbone, so a whole ablation table (paper Tables 3 and 4) costs one encoding pass.

Config files live in ``configs/`` at the repository root (``configs/table3.py``; a wheel carries
them as ``drc_jax/configs/``); each defines ``get_config() -> RunConfig``. ``--config`` takes a
name from there (or from ``./configs``) or a path to any such file.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from drc_jax.scoring import METHODS, DRCParams

CONFIG_DIRS = (
    Path(__file__).resolve().parents[2] / "configs",  # a checkout (or an editable install)
    Path(__file__).resolve().parents[1] / "configs",  # a wheel install: drc_jax/configs
    Path.cwd() / "configs",
)


class ConfigError(ValueError):
    """A config file or override is unusable; the message says which and why."""


@dataclass(frozen=True)
class Variant:
    """One table row: ``method`` scored with ``params`` on backbone ``weights``.

    ``name`` keys the row in results.json; ``label`` is what the printed table shows.
    ``weights=None`` means the run's ``--weights``.
    """

    name: str
    method: str
    params: DRCParams = field(default_factory=DRCParams)
    label: str = ""
    weights: str | None = None

    def __post_init__(self):
        if self.method not in METHODS:
            raise ConfigError(
                f"variant {self.name!r}: unknown method {self.method!r}; expected one of {METHODS}"
            )
        if not self.label:
            object.__setattr__(self, "label", self.name)

    def to_json(self) -> dict:
        params = dataclasses.asdict(self.params)
        return {
            "method": self.method,
            "label": self.label,
            "weights": self.weights,
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
        }


@dataclass(frozen=True)
class RunConfig:
    """A named set of variants. Gains are reported against the first ``clip`` variant that
    uses the same backbone."""

    name: str
    variants: tuple[Variant, ...]
    description: str = ""

    def __post_init__(self):
        if not self.variants:
            raise ConfigError(f"config {self.name!r} has no variants")
        names = [v.name for v in self.variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"config {self.name!r}: duplicate variant names {dupes}")

    def baseline_of(self, variant: Variant) -> Variant | None:
        for v in self.variants:
            if v.method == "clip" and v.weights == variant.weights:
                return v
        return None

    def backbones(self, default_weights: str) -> list[str]:
        """Distinct backbones in first-use order (``None`` resolved to ``default_weights``)."""
        return list(dict.fromkeys(v.weights or default_weights for v in self.variants))

    def select(self, methods: list[str]) -> RunConfig:
        """Keep the variants whose method or name is in ``methods``."""
        kept = tuple(v for v in self.variants if v.method in methods or v.name in methods)
        if not kept:
            raise ConfigError(
                f"--methods {','.join(methods)} matches no variant of config {self.name!r} "
                f"(variants: {[v.name for v in self.variants]}; methods: {list(METHODS)})"
            )
        return dataclasses.replace(self, variants=kept)

    def override(self, overrides: dict) -> RunConfig:
        """Apply DRCParams ``field=value`` overrides to every variant."""
        if not overrides:
            return self
        try:
            variants = tuple(
                dataclasses.replace(v, params=dataclasses.replace(v.params, **overrides))
                for v in self.variants
            )
        except (TypeError, ValueError) as e:
            raise ConfigError(f"--params: {e}") from e
        return dataclasses.replace(self, variants=variants)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "variants": {v.name: v.to_json() for v in self.variants},
        }


_PARAM_TYPES = {f.name: f.type for f in dataclasses.fields(DRCParams)}


def parse_overrides(text: str) -> dict:
    """``"rho=1.0,use_repulsion=false,operator=paper_eq8"`` -> DRCParams field values."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in _PARAM_TYPES:
            raise ConfigError(
                f"--params: {part!r} is not FIELD=VALUE with FIELD one of {sorted(_PARAM_TYPES)}"
            )
        if key.startswith("use_"):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ConfigError(f"--params: {key} takes true or false, got {value!r}")
            out[key] = value.lower() in ("true", "1")
        elif key == "operator":
            out[key] = value
        elif key in ("t", "w_base"):
            raise ConfigError(f"--params: set {key} (a per-strength table) in a config file")
        else:
            try:
                out[key] = float(value)
            except ValueError:
                raise ConfigError(f"--params: {key} takes a number, got {value!r}") from None
    return out


def find_config(spec: str) -> Path:
    path = Path(spec).expanduser()
    if spec.endswith(".py") or "/" in spec:
        if path.is_file():
            return path
        raise ConfigError(f"--config {spec}: no such file")
    for d in CONFIG_DIRS:
        if (d / f"{spec}.py").is_file():
            return d / f"{spec}.py"
    available = sorted({p.stem for d in CONFIG_DIRS if d.is_dir() for p in d.glob("*.py")})
    raise ConfigError(
        f"--config {spec}: no configs/{spec}.py (looked in {[str(d) for d in CONFIG_DIRS]}); "
        f"available: {available}; or pass a path to a file defining get_config()"
    )


def load_config(spec: str) -> RunConfig:
    """Load ``get_config()`` from ``configs/<spec>.py`` or from the file ``spec``."""
    path = find_config(spec)
    module_spec = importlib.util.spec_from_file_location(f"drc_jax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:
        raise ConfigError(f"config {path} failed to load: {type(e).__name__}: {e}") from e
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config {path} defines no get_config() -> RunConfig")
    config = module.get_config()
    if not isinstance(config, RunConfig):
        raise ConfigError(f"config {path}: get_config() returned {type(config).__name__}")
    return config
