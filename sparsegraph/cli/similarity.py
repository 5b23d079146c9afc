"""``sparsegraph similarity MODEL A.pt B.pt --inputs X.npy|digits``: layer-by-layer SVCCA, PWCCA
or CKA of two checkpoints of one architecture."""

from __future__ import annotations

import argparse

from .common import add_model_args, console, parse_shape, print_json, split_list


def _keep(text: str) -> int | float | None:
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an int, a fraction in (0, 1) or 'none', got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "similarity",
        help="layer-by-layer SVCCA / PWCCA / CKA of two checkpoints of one model",
        description="Run two checkpoints (state dicts) of MODEL on the same inputs and compare "
        "the outputs of every prunable layer (Linear, Conv): SVCCA (Raghu et al. 2017), PWCCA "
        "(Morcos et al. 2018) or minibatch CKA (Kornblith et al. 2019; Nguyen et al. 2021). "
        "Conv outputs are averaged over positions unless --conv positions.",
    )
    add_model_args(p)
    p.add_argument("checkpoint_a", metavar="A.pt", help="state dict of model A (read with "
                   "torch.load(weights_only=True); torch.nn.utils.prune checkpoints accepted)")
    p.add_argument("checkpoint_b", metavar="B.pt", help="state dict of model B")
    p.add_argument("--inputs", required=True, metavar="X.npy|digits",
                   help="a .npy array (N, *input shape), or 'digits' (scikit-learn's 8x8 digits "
                   "resized to the model's input)")
    p.add_argument("--method", choices=("svcca", "pwcca", "cka"), default="svcca",
                   help="default svcca")
    p.add_argument("--masks-a", metavar="M", help="mask file applied to model A")
    p.add_argument("--masks-b", metavar="M", help="mask file applied to model B")
    p.add_argument("--layers", metavar="NAMES", help="comma-separated module names (default: "
                   "every Linear and Conv)")
    p.add_argument("--keep", type=_keep, default=20, metavar="K",
                   help="SVCCA directions: an int, a variance fraction in (0, 1), or 'none' for "
                   "plain CCA (default 20)")
    p.add_argument("--conv", choices=("mean", "positions"), default="mean",
                   help="conv outputs averaged over positions (default) or one sample per "
                   "position")
    p.add_argument("--cross", action="store_true",
                   help="every layer of A against every layer of B (a matrix)")
    p.add_argument("--batch-size", type=int, default=256, help="inputs per forward pass and "
                   "rows per CKA minibatch (default 256)")
    p.add_argument("--max-samples", type=int, default=None, metavar="N",
                   help="use the first N inputs only")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--plot", metavar="PNG", help="write the per-layer plot (or the heat map "
                   "with --cross)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._args import check_count
    from ..pytorch.activations import layer_similarity
    from ..pytorch.apply import apply_masks
    from ..pytorch.checkpoints import load_checkpoint, load_inputs
    from ..pytorch.models import resolve_model

    shape = parse_shape(args.input_shape)
    limit = None if args.max_samples is None else check_count(args.max_samples, "--max-samples")
    models = []
    for ckpt, masks in ((args.checkpoint_a, args.masks_a), (args.checkpoint_b, args.masks_b)):
        model, example = resolve_model(args.model, shape)
        load_checkpoint(model, ckpt)
        if masks is not None:
            from ..graph.trace import trace
            from ..masks.files import load_masks

            apply_masks(model, load_masks(masks, net=trace(model, example)))
        models.append(model)
    inputs = load_inputs(args.inputs, example, limit)
    result = layer_similarity(models[0], models[1], inputs, method=args.method,
                              layers=split_list(args.layers), batch_size=args.batch_size,
                              conv=args.conv, cross=args.cross, keep=args.keep,
                              progress=None if not args.json else False)
    if args.plot:
        from ..sweep.similarity_plots import plot_similarity, plot_similarity_matrix

        title = f"{args.model}: {args.checkpoint_a} vs {args.checkpoint_b}"
        if args.cross:
            plot_similarity_matrix(result, args.plot, title=title)
        else:
            plot_similarity(result, args.plot, title=title)
    if args.json:
        print_json(result.to_dict())
        return 0
    out = console()
    out.print(result)
    if args.plot:
        out.print(f"wrote {args.plot}")
    return 0
