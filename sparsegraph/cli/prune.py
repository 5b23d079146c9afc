"""``sparsegraph prune MODEL --method synflow --density D -o masks.safetensors``: data-free
pruning-at-initialization masks, written to a mask file."""

from __future__ import annotations

import argparse
import sys

from .common import add_model_args, check_mask_output, parse_shape, split_list

DATA_FREE = ("random", "magnitude", "synflow", "lamp")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prune",
        help="masks from a data-free pruning score (random, magnitude, synflow, lamp)",
        description="Score every prunable weight of MODEL at its initialisation and keep exactly "
        "round(density * N) of them (globally, or per layer with --quotas). SNIP and GraSP need "
        "data: use sparsegraph.prune(model, 'snip', data=...) from Python.",
    )
    add_model_args(p)
    p.add_argument("--method", choices=DATA_FREE, default="synflow", help="the score (default "
                   "synflow: Tanaka et al. 2020, 100 rounds on the exponential schedule)")
    p.add_argument("--density", type=float, required=True,
                   help="fraction of the prunable weights kept, in (0, 1]")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the model's initialisation and of 'random' (default 0)")
    p.add_argument("--quotas", metavar="SCHEME", default=None,
                   help="prune per layer with this quota scheme (e.g. erk, igq) instead of one "
                   "global ranking")
    p.add_argument("--exclude", metavar="NAMES", default=None,
                   help="comma-separated layer names or globs kept dense (they count in the "
                   "budget)")
    p.add_argument("--rounds", type=int, default=100, help="SynFlow rounds (default 100)")
    p.add_argument("--invert", action="store_true", help="score inversion (Frankle et al. "
                   "2021): keep the lowest-scoring weights instead of the highest")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="mask file to write (.safetensors, .npz, .pt)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import warnings

    from ..graph.trace import trace
    from ..masks.files import save_masks
    from ..pytorch.models import MODELS, build_model, resolve_model
    from ..pytorch.pruners import prune

    check_mask_output(args)
    if args.model in MODELS and args.input_shape is None:
        model, example = build_model(args.model, seed=args.seed)
    else:
        model, example = resolve_model(args.model, parse_shape(args.input_shape))
    exclude = split_list(args.exclude)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        masks = prune(model, args.method, density=args.density, example_input=example,
                      quotas=args.quotas, seed=args.seed, rounds=args.rounds, exclude=exclude,
                      invert=args.invert)
    for w in caught:
        print(f"sparsegraph prune: warning: {w.message}", file=sys.stderr)
    net = trace(model, example)
    meta = {
        "scheme": args.quotas or "global",
        "method": args.method,
        "density": args.density,
        "seed": args.seed,
        "granularity": "weight",
        "model": args.model,
        "exclude": exclude or [],
        "invert": args.invert,
    }
    if args.method == "synflow":
        meta["rounds"] = args.rounds
    path = save_masks(args.output, masks, net=net, metadata=meta, overwrite=args.force)
    kept = sum(int(m.sum()) for m in masks.values())
    print(f"wrote {path}: {args.method} masks for {net.name}, {kept:,} of {net.params:,} weights "
          f"kept (density {kept / net.params:.6g})")
    return 0
