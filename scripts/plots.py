"""Redraw a run's plots from the reports its stage folders hold, e.g. the README's samples after a demo run:

    python scripts/plots.py out/demo docs/plots

Each stage folder directly under RUN is found by its manifest (filter: funnel.png and lengths.png, mix:
mix.png, distill: loss.png) or its scores.json (eval: eval.png); nothing is re-run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from datakit.plots import redraw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run folder whose subfolders are stage outputs (e.g. out/demo)")
    parser.add_argument("out", type=Path, help="where the PNGs go (e.g. docs/plots)")
    args = parser.parse_args()
    if not args.run.is_dir():
        parser.error(f"{args.run}: not a folder")
    drawn = redraw(args.run, args.out)
    if not drawn:
        parser.error(f"{args.run}: no stage folder with a report (filter, mix, distill or eval) directly inside")
    for path in drawn:
        print(path)


if __name__ == "__main__":
    main()
