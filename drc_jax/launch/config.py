"""Run configs as code: one ``ml_collections.ConfigDict`` (:func:`base_config`) per run.

``configs/<name>.py`` defines ``get_config()``: ``base_config()`` with ``rows`` (names, in order)
and ``variants`` (one :func:`row` each; a ``None`` row field takes the run-level value). Any field
can be overridden::

    python -m drc_jax.launch --config table4 --config.w1=0.4 --config.variants.rho_2.params.rho=3
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from ml_collections import ConfigDict, config_dict

from drc_jax import defaults
from drc_jax.data.synthetic import SyntheticSpec
from drc_jax.decompose.sglang import MODES as DECOMPOSER_MODES
from drc_jax.errors import UserError
from drc_jax.metrics import MEDR
from drc_jax.scoring import METHODS, DRCParams
from drc_jax.texts import (
    CONCEPTS,
    DRC_PROMPTS,
    METHOD_PROMPTS,
    PHOTO_PROMPTS,
    RAW_PROMPTS,
    SPACEVLM_PROMPTS,
    Prompts,
)

CONFIG_DIRS = (
    Path(__file__).resolve().parents[2] / "configs",  # a checkout (or an editable install)
    Path(__file__).resolve().parents[1] / "configs",  # a wheel install: drc_jax/configs
    Path.cwd() / "configs",
)
BENCHMARKS = ("synthetic", "synthetic_video", "coco", "msrvtt")
ROW_METHODS = (*METHODS, "neat")
"""A row's method: one of :mod:`drc_jax.scoring`'s, or "neat" (CLIP + :mod:`drc_jax.neat`)."""

PROMPT_PRESETS = {
    "raw": RAW_PROMPTS,
    "drc": DRC_PROMPTS,
    "photo": PHOTO_PROMPTS,
    "spacevlm": SPACEVLM_PROMPTS,
}
"""Named prefix settings a row can take; unset fields take its method's own (METHOD_PROMPTS)."""
VIDEO_MEANS = ("renormalized", "unnormalized")  # mean of unit frame embeddings: NegBench / SpaceVLM
METHOD_VIDEO_MEAN = {"spacevlm": "unnormalized"}
QUERY_KINDS = ("negated", "plain")
SYNTHETIC = ("synthetic", "synthetic_video")

CHOICES = {
    "benchmark": BENCHMARKS,
    "dtype": defaults.DTYPES,
    "preprocess": defaults.PREPROCESS_MODES,
    "video_sampling": ("spacevlm", "negbench"),
    "decomposer": defaults.DECOMPOSERS,
    "decomposer_mode": DECOMPOSER_MODES,
    "on_missing_media": ("fail", "skip"),
    "on_bad_caption": ("fail", "skip", "keep"),
    "image_dtype": (None, "bfloat16"),
    "concepts_per_caption": CONCEPTS,
    "medr": tuple(MEDR),
    "query_kind": QUERY_KINDS,
}
_PARAM_FIELDS = {f.name: f for f in dataclasses.fields(DRCParams)}


class ConfigError(UserError, ValueError):
    """A config file or override is unusable; the message says which and why."""


def base_config() -> ConfigDict:
    """Every run setting with its default; config files fill in ``rows`` and ``variants``."""
    c = ConfigDict()
    c.name = ""
    c.description = ""
    c.benchmark = "synthetic"
    c.captions_csv = config_dict.placeholder(str)  # a NegBench query CSV (coco / msrvtt)
    c.data_dir = config_dict.placeholder(str)  # media, found by file name; synthetic: rendered here
    c.limit = config_dict.placeholder(int)  # only the first N media rows
    c.synthetic = ConfigDict(dataclasses.asdict(SyntheticSpec()))
    c.on_missing_media = "fail"  # missing / unreadable media: stop, or evaluate without them
    c.on_bad_caption = "fail"  # empty captions: stop, leave out, or keep (NegBench's count)
    c.query_kind = "negated"  # "plain": captions without negation (configs/zeroshot.py)
    c.weights = config_dict.placeholder(str)  # None: PAPER_WEIGHTS, or SYNTHETIC_WEIGHTS
    c.dtype = "float32"  # encoder compute dtype
    c.preprocess = "spacevlm"  # squash to 224 (SpaceVLM) or resize + centre crop (openai)
    c.video_frames = 4
    c.video_sampling = "spacevlm"
    c.batch_size = 64  # encoding batch, split over local devices
    c.cache_dir = str(defaults.cache_root())  # embeddings + decompositions; '' turns caching off
    c.image_embeddings = config_dict.placeholder(str)  # precomputed (N, D) .npy, CSV row order
    c.decomposer = "rules"
    # sglang: "merged" (one request a caption) or "two_prompt" (the paper's, two requests).
    c.decomposer_mode = "merged"
    c.sglang_url = defaults.SGLANG_URL
    c.sglang_model = defaults.SGLANG_MODEL
    c.decompositions = config_dict.placeholder(str)  # a JSONL of precomputed decompositions
    # SpaceVLM's Mistral-7B split (drc_jax.data.spacevlm_split): "spacevlm" rows score it verbatim.
    c.spacevlm_split = config_dict.placeholder(str)
    c.concepts_per_caption = "all"  # DRC rows: every negated concept found, or "one" (the first)
    # The paper's decomposer: a run with another says so in its table and record.
    c.paper_decomposer = config_dict.placeholder(str)
    # NEAT rows: its logic-inversion CSV (row-aligned with the query CSV; else aff / neg / cf) and
    # its loader's --seed ("0,1,2": one adaptation each, reported as mean and spread).
    c.neat_texts = config_dict.placeholder(str)
    c.neat_seed = 0
    c.neat_seeds = config_dict.placeholder(str)
    # Scoring: run-level DRCParams (eqs. 3-9), used by every row that does not set its own.
    for name, f in _PARAM_FIELDS.items():
        c[name] = f.default
    c.chunk_size = 8192  # images scored per streamed top-k step per device
    c.image_dtype = config_dict.placeholder(str)  # "bfloat16": half the image memory
    # The table: row names in order, one row() each; methods: keep rows by method or name.
    c.rows = ()
    c.variants = ConfigDict()
    c.methods = config_dict.placeholder(str)  # comma-separated
    c.medr = "median"  # drc_jax.metrics.MEDR: "median" (np.median) or "lower" (NEAT's)
    c.output_dir = config_dict.placeholder(str)  # None: runs/<benchmark>
    c.figures = 0  # render N sample queries to <output_dir>/figures
    c.overwrite = False  # replace results of another config/benchmark in output_dir
    c.progress = True
    return c


def paper_protocol(config: ConfigDict) -> ConfigDict:
    """``config`` with the paper's decomposition: two prompts (sglang), one concept a caption."""
    config.decomposer_mode = "two_prompt"
    config.concepts_per_caption = "one"
    config.paper_decomposer = defaults.SGLANG_MODEL
    return config


def row(
    method: str,
    label: str = "",
    *,
    weights: str | None = None,
    prompts: str | Prompts | dict | None = None,
    neat: dict | None = None,
    video_mean: str | None = None,
    **params,
) -> ConfigDict:
    """One table row: ``method`` scored with ``params`` (DRCParams fields) on backbone ``weights``.

    ``prompts``: a :data:`PROMPT_PRESETS` name, :class:`~drc_jax.texts.Prompts` or dict of some of
    its fields; ``neat``: NEATConfig fields; ``video_mean``: one of :data:`VIDEO_MEANS`. Every field
    is present, ``None`` inheriting the run's or the method's own, so any can be overridden.
    """
    unknown = sorted(set(params) - set(_PARAM_FIELDS))
    if unknown:
        raise ConfigError(f"row {label or method!r}: unknown parameters {unknown}")
    p = ConfigDict()
    for name, f in _PARAM_FIELDS.items():
        kind = type(f.default)
        p[name] = config_dict.placeholder(kind)
        if name in params:
            p[name] = tuple(params[name]) if kind is tuple else params[name]
    r = ConfigDict()
    r.method = method
    r.label = label
    r.weights = config_dict.placeholder(str)
    r.weights = weights
    r.params = p
    r.prompts = _prompt_fields(label or method, prompts)
    r.video_mean = config_dict.placeholder(str)
    r.video_mean = video_mean
    if method == "neat":
        r.neat = _neat_fields(label or method, neat or {})
    elif neat:
        raise ConfigError(f"row {label or method!r}: neat settings on a {method!r} row")
    return r


def _prompt_fields(name: str, prompts) -> ConfigDict:
    if isinstance(prompts, str):
        if prompts not in PROMPT_PRESETS:
            raise ConfigError(
                f"row {name!r}: unknown prompts {prompts!r}; expected one of "
                f"{sorted(PROMPT_PRESETS)} or a dict of {list(Prompts.__dataclass_fields__)}"
            )
        prompts = PROMPT_PRESETS[prompts]
    if isinstance(prompts, Prompts):
        prompts = prompts.to_dict()
    prompts = dict(prompts or {})
    unknown = sorted(set(prompts) - set(Prompts.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"row {name!r}: unknown prompt fields {unknown}")
    out = ConfigDict()
    for f in Prompts.__dataclass_fields__:
        out[f] = config_dict.placeholder(str)
        out[f] = prompts.get(f)
    return out


def _neat_fields(name: str, neat: dict) -> ConfigDict:
    from drc_jax.neat import NEATConfig

    defaults = NEATConfig().to_dict()
    unknown = sorted(set(neat) - set(defaults))
    if unknown:
        raise ConfigError(
            f"row {name!r}: unknown NEAT settings {unknown}; known: {sorted(defaults)}"
        )
    return ConfigDict({**defaults, **neat})


@dataclass(frozen=True)
class Variant:
    """A resolved row; ``name`` keys results.json, ``label`` is printed, ``weights=None``: run's."""

    name: str
    method: str
    params: DRCParams = field(default_factory=DRCParams)
    label: str = ""
    weights: str | None = None
    prompts: Prompts | None = None
    neat: dict | None = None  # NEATConfig fields (method "neat")
    split: str | None = None  # SpaceVLM's split file (method "spacevlm" with spacevlm_split)
    video_mean: str | None = None
    concepts: str = "all"  # concepts_per_caption (DRC); the baselines always score one

    def __post_init__(self):
        if self.method not in ROW_METHODS:
            raise ConfigError(
                f"row {self.name!r}: unknown method {self.method!r}; expected one of {ROW_METHODS}"
            )
        if not self.label:
            object.__setattr__(self, "label", self.name)
        if self.prompts is None:
            object.__setattr__(self, "prompts", METHOD_PROMPTS[self.method])
        if self.video_mean is None:
            object.__setattr__(
                self, "video_mean", METHOD_VIDEO_MEAN.get(self.method, "renormalized")
            )
        if self.video_mean not in VIDEO_MEANS:
            raise ConfigError(
                f"row {self.name!r}: video_mean {self.video_mean!r}; expected one of {VIDEO_MEANS}"
            )
        if self.method != "drc" and self.concepts != "one":
            object.__setattr__(self, "concepts", "one")
        if self.method == "neat" and self.neat is None:
            from drc_jax.neat import NEATConfig

            object.__setattr__(self, "neat", NEATConfig().to_dict())

    def neat_config(self):
        """The row's :class:`drc_jax.neat.NEATConfig` (method "neat")."""
        from drc_jax.neat import NEATConfig

        try:
            return NEATConfig(**self.neat)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"row {self.name!r}: {e}") from e

    def to_json(self) -> dict:
        params = dataclasses.asdict(self.params)
        return {
            "method": self.method,
            "label": self.label,
            "weights": self.weights,
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
            "prompts": self.prompts.to_dict(),
            "video_mean": self.video_mean,
            "concepts_per_caption": self.concepts,
            **({"neat": dict(self.neat)} if self.neat is not None else {}),
            **({"spacevlm_split": self.split} if self.split else {}),
        }


@dataclass(frozen=True)
class Table:
    """The rows of a run; gains are against the first ``clip`` row of the same backbone."""

    name: str
    variants: tuple[Variant, ...]

    def baseline_of(self, variant: Variant) -> Variant | None:
        for v in self.variants:
            if v.method == "clip" and v.weights == variant.weights:
                return v
        return None

    def backbones(self, default_weights: str) -> list[str]:
        """Distinct backbones in first-use order (``None`` resolved to ``default_weights``)."""
        return list(dict.fromkeys(v.weights or default_weights for v in self.variants))


def _params(config: ConfigDict, name: str, overrides: ConfigDict) -> DRCParams:
    values = {k: config[k] for k in _PARAM_FIELDS}
    values.update({k: v for k, v in overrides.items() if v is not None})
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        return DRCParams(**values)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config {config.name!r}, row {name!r}: {e}") from e


def table(config: ConfigDict) -> Table:
    """The config's rows (``config.rows`` order, filtered by ``config.methods``), resolved."""
    names = list(config.rows)
    unknown = [n for n in names if n not in config.variants]
    if unknown:
        raise ConfigError(
            f"config {config.name!r}: rows {unknown} have no entry in config.variants "
            f"(defined: {sorted(config.variants)})"
        )
    variants = []
    for n in names:
        r = config.variants[n]
        prompts = METHOD_PROMPTS.get(r.method, RAW_PROMPTS).to_dict()
        if "prompts" in r:
            prompts.update({k: v for k, v in r.prompts.items() if v is not None})
        variants.append(
            Variant(
                n,
                r.method,
                _params(config, n, r.params),
                label=r.label,
                weights=r.weights,
                prompts=Prompts(**prompts),
                neat=r.neat.to_dict() if "neat" in r else None,
                split=config.spacevlm_split if r.method == "spacevlm" else None,
                video_mean=r.get("video_mean"),
                concepts=config.concepts_per_caption,
            )
        )
    if not variants:
        raise ConfigError(f"config {config.name!r} has no rows")
    for v in variants:
        if v.method == "neat":
            v.neat_config()  # NEAT's own checks, before any work
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"config {config.name!r}: duplicate rows {dupes}")
    if config.methods:
        keep = [m.strip() for m in config.methods.split(",") if m.strip()]
        variants = [v for v in variants if v.method in keep or v.name in keep]
        if not variants:
            raise ConfigError(
                f"--methods {config.methods} matches no row of config {config.name!r} "
                f"(rows: {names}; methods: {list(ROW_METHODS)})"
            )
    return Table(config.name, tuple(variants))


def validate(config: ConfigDict) -> ConfigDict:
    """Check the settings that take one of a few values, and the table; return ``config``."""
    for key, allowed in CHOICES.items():
        if config[key] not in allowed:
            shown = [a for a in allowed if a is not None]
            raise ConfigError(f"--config.{key}={config[key]!r}: expected one of {shown}")
    for key in ("batch_size", "chunk_size", "video_frames"):
        if config[key] < 1:
            raise ConfigError(f"--config.{key}={config[key]}: must be at least 1")
    table(config)
    neat_seeds(config)
    return config


def neat_seeds(config: ConfigDict) -> tuple[int, ...]:
    """``neat_seeds`` ("0,1,2"), else ``(neat_seed,)``: the seeds NEAT rows adapt under."""
    text = config.neat_seeds
    try:
        out = tuple(int(s) for s in text.split(",") if s.strip()) if text else (config.neat_seed,)
    except (TypeError, ValueError):
        out = ()
    if not out or len(set(out)) != len(out) or not all(0 <= s < 2**32 for s in out):
        raise ConfigError(
            f"--config.neat_seeds={text!r} / --config.neat_seed={config.neat_seed!r}: give "
            "distinct integers in [0, 2**32), comma-separated (e.g. --config.neat_seeds=0,1,2)"
        )
    return out


def resolved_weights(config: ConfigDict) -> str:
    """The run's default backbone: ``weights``, else the paper's (random if synthetic)."""
    if config.weights == "random":
        return defaults.SYNTHETIC_WEIGHTS
    if config.weights:
        return config.weights
    return defaults.SYNTHETIC_WEIGHTS if config.benchmark in SYNTHETIC else defaults.PAPER_WEIGHTS


def output_dir(config: ConfigDict) -> Path:
    return Path(config.output_dir or Path("runs") / config.benchmark).expanduser()


def synthetic_spec(config: ConfigDict) -> SyntheticSpec:
    return SyntheticSpec(**config.synthetic.to_dict())


def find_config(spec: str) -> Path:
    """``configs/<spec>.py`` for a bare name, else the file ``spec``."""
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


def _call_get_config(path: Path) -> ConfigDict:
    module_spec = importlib.util.spec_from_file_location(f"drc_jax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:
        raise ConfigError(f"config {path} failed to load: {type(e).__name__}: {e}") from e
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config {path} defines no get_config() -> ConfigDict")
    config = module.get_config()
    if not isinstance(config, ConfigDict):
        raise ConfigError(f"config {path}: get_config() returned {type(config).__name__}")
    return config


def load_config(spec: str, **overrides) -> ConfigDict:
    """``--config spec --config.field=value`` in Python: the locked, validated config with
    ``overrides`` (nested as ``"variants.drc.params.rho"``)."""
    config = _call_get_config(find_config(spec))
    config.lock()
    try:
        config.update_from_flattened_dict(overrides)
    except (AttributeError, KeyError, TypeError) as e:
        raise ConfigError(f"config {spec}: cannot override {sorted(overrides)}: {e}") from e
    return validate(config)


RunOptions = ConfigDict  # what the pipeline stages read: a run config (base_config() + table)


def replace(config: ConfigDict, **changes) -> ConfigDict:
    """A copy of ``config`` with ``changes`` (top-level fields), locked like the original."""
    out = config.copy_and_resolve_references()
    with out.unlocked():
        out.update(changes)
    return out
