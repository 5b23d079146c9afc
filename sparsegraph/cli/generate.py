"""``sparsegraph generate MODEL --scheme S --density D --seed K -o FILE``: write random masks."""

from __future__ import annotations

import argparse
from typing import Any

from ..registry import GRANULARITIES, MASK_FORMATS, STRUCTURES
from .common import add_model_args, check_mask_output, load_net, print_json
from .options import (
    add_scheme_arg,
    coverage,
    print_coverage,
    resolve_scheme,
    scheme_epilog,
    wrap,
)
from .quotas import add_quota_args, quota_options


def register(subparsers: Any) -> None:
    """Add the ``generate`` sub-command."""
    parser = subparsers.add_parser(
        "generate",
        help="write reproducible random masks from a layerwise quota",
        description=wrap("Generate random masks with exactly the quota's kept count per layer, "
        "uniformly without replacement, from one integer seed, and write them to a mask file "
        "(atomically; its metadata records scheme, density, seed, granularity, library version "
        "and the model's fingerprint). Masks from a pruning score: `sparsegraph prune`."),
        epilog=scheme_epilog(("quota",), sweepable_only=True),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_args(parser)
    add_scheme_arg(parser, ("quota",))
    parser.add_argument("--density", type=float, required=True, metavar="D",
                        help="overall density in (0, 1]; with --effective the target effective "
                        "density")
    parser.add_argument("--seed", type=int, default=0, metavar="K", help="random seed (default 0)")
    parser.add_argument("--granularity", choices=GRANULARITIES, default="weight",
                        help="prune single weights, whole kernels or whole output filters")
    parser.add_argument("--structure", choices=STRUCTURES, default="random",
                        help="uniformly random (default) or biregular layer graphs")
    parser.add_argument("--effective", action="store_true",
                        help="reach the target density as effective density (Vysogorets & "
                        "Kempe's low-cost extension: nested masks, bisection on the direct count)")
    add_quota_args(parser)
    parser.add_argument("-o", "--output", required=True, metavar="FILE",
                        help="mask file to write (.safetensors, .npz, .pt); a directory only "
                        "with --format open_lth")
    parser.add_argument("--format", choices=MASK_FORMATS, default=None,
                        help="file format (default: from the suffix); open_lth writes mask.pth "
                        "and sparsity_report.json into the directory -o (created if needed)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run, kernels=True)


def run(args: argparse.Namespace) -> int:
    """Generate the masks, write them, print a summary."""
    from .. import __version__
    from .._args import check_density, check_seed, select_layers
    from ..errors import QuotaError
    from ..masks.files import save_masks
    from ..masks.sampling import random_masks

    record = resolve_scheme(args.scheme, "quota", "generate")
    if not record.sweepable:
        raise QuotaError(f"--scheme {record.name} copies a given mask's layer densities; from "
                         f"Python: sg.quotas(net, {record.name!r}, masks=...)")
    density = check_density(args.density, "--density")
    seed = check_seed(args.seed, "--seed")
    check_mask_output(args)
    net = load_net(args)
    opts = quota_options(args, args.scheme)
    masks = random_masks(net, args.scheme, density=density, seed=seed,
                         granularity=args.granularity, structure=args.structure,
                         effective=args.effective, **opts)
    kept = sum(int(m.sum()) for m in masks.values())
    dense = select_layers(net, opts["dense"], what="--dense") if opts["dense"] else []
    cov = coverage(net, dense, "--dense")
    metadata: dict[str, Any] = {
        "scheme": args.scheme,
        "density": density,
        "seed": seed,
        "granularity": args.granularity,
        "structure": args.structure,
        "effective_target": args.effective,
        "dense": opts["dense"] or [],
        "dense_in_budget": opts["dense_in_budget"],
        "library": f"sparsegraph {__version__}",
    }
    if "erk_power_scale" in record.options:
        metadata["erk_power_scale"] = args.erk_power_scale
    summary: dict[str, Any] = {
        "output": args.output,
        "network": net.name,
        "scheme": args.scheme,
        "layers": len(net.layers),
        "params": net.params,
        "kept": kept,
        "direct_density": kept / net.params,
    }
    if args.effective:
        info = masks.info  # type: ignore[attr-defined]
        metadata["direct_density"] = info.direct_density
        metadata["effective_density"] = info.effective_density
        summary["effective"] = info.effective
        summary["effective_density"] = info.effective_density
        summary["target_effective_density"] = density
    path = save_masks(args.output, masks, net=net, metadata=metadata, overwrite=args.force,
                      format=args.format)
    summary["output"] = str(path)
    summary.update(cov)
    if args.json:
        print_json(summary)
        return 0
    line = (f"wrote {path}: {args.scheme} masks for {net.name} ({len(net.layers)} layers), "
            f"{kept:,} of {net.params:,} weights kept, direct density {kept / net.params:.6g}")
    if args.effective:
        line += (f", effective density {summary['effective_density']:.6g} "
                 f"(target {density:g})")
    print(line)
    print_coverage(cov)
    return 0

