"""Derive src/resnet_cli/data/imagenet_categories.tsv: a coarse category for each ImageNet-1k
class, from WordNet 3.0's noun hierarchy.

    apt-get install wordnet-base   # /usr/share/wordnet/data.noun
    python tools/derive_categories.py [--wordnet /usr/share/wordnet/data.noun]

ImageNet-1k's class ids are WordNet 3.0 noun synsets (offsets) in sorted order, n01440764
(tench) being class 0; timm's ImageNetInfo lists them with their labels. A class's category is
the nearest of its ancestors (hypernyms, instance hypernyms included) that is one of ANCHORS,
counted in hypernym steps, a FALLBACK anchor only when no other applies; a tie goes to the
anchor listed first. The table is committed; the
WordNet files are not, and nothing reads them at run time.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

OUT = (
    Path(__file__).resolve().parent.parent
    / "src"
    / "resnet_cli"
    / "data"
    / "imagenet_categories.tsv"
)

# (category, WordNet 3.0 noun offsets whose descendants it names). Order breaks ties.
ANCHORS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("dog", (2084071,)),  # dog, domestic dog
    ("cat", (2121808,)),  # domestic cat (lions and tigers are "mammal")
    ("bird", (1503061,)),
    ("fish", (2512053,)),
    ("reptile or amphibian", (1661091, 1627424)),
    ("insect or spider", (2159955, 1769347)),  # insect; arachnid
    ("mammal", (1861778,)),
    ("other animal", (15388,)),  # animal: crabs, snails, jellyfish, worms
    ("aircraft", (2686568,)),
    ("boat", (4530566,)),  # vessel, watercraft
    ("vehicle", (4524313, 3100490)),  # vehicle; conveyance (a bus, a train)
    ("fruit or vegetable", (7705931, 7707451, 13134947)),  # edible fruit; vegetable; fruit
    ("food", (21265, 7555863)),  # food, nutrient; food, solid food
    ("plant or fungus", (17222, 12992868)),  # plant; fungus
    ("person", (7846,)),
    ("landscape", (9287968, 9334396)),  # geological formation; land (shore, seashore)
    ("musical instrument", (3800933,)),
    # clothing; footwear; hat; jewelry
    ("clothing", (3051540, 3381126, 3380867, 3497657, 3597469)),
    ("furniture", (3405725,)),
    ("appliance", (2729837,)),  # toaster, washer, microwave
    # electronic equipment, device; computer; electrical device; camera; radio, television
    ("electronic device", (3278248, 3277771, 3082979, 3269401, 3926148, 3078287)),
    ("sports", (4285146, 2778669)),  # sports equipment; ball
    ("weapon", (4565375,)),
    ("tool", (4451818, 3563967, 3574816)),  # tool; implement; instrument (clocks, scales)
    ("container", (3094503, 4531098)),  # container; vessel (a bottle, a jug)
    ("building or structure", (2913152, 4341686, 4105068)),  # building; structure; roof
    # furnishing (curtains); floor cover; cloth; bedclothes; toiletry; lamp; toy
    ("household item", (3405265, 3366823, 3932670, 2820210, 4447443, 3636248, 3964744)),
)
OTHER = "other"
FALLBACK = frozenset({"other animal"})  # used only where no other category applies


def read_wordnet(path: Path) -> tuple[dict[int, list[str]], dict[int, list[int]]]:
    """data.noun -> (offset -> lemmas, offset -> hypernym offsets)."""
    lemmas: dict[int, list[str]] = {}
    parents: dict[int, list[int]] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith(" "):  # the licence header
                continue
            fields = line.split(" | ")[0].split()
            offset, count = int(fields[0]), int(fields[3], 16)
            words = [fields[4 + 2 * i] for i in range(count)]
            rest = fields[4 + 2 * count :]
            pointers = int(rest[0])
            ups = []
            for i in range(pointers):
                symbol, target, pos = rest[1 + 4 * i : 4 + 4 * i]
                if symbol in ("@", "@i") and pos == "n":
                    ups.append(int(target))
            lemmas[offset] = words
            parents[offset] = ups
    return lemmas, parents


def nearest_category(
    offset: int, parents: dict[int, list[int]], anchors: dict[int, tuple[int, str]]
) -> tuple[str, list[int]]:
    """(category, the hypernym path from ``offset`` to its anchor, or to the root).

    The nearest anchor wins, except that a FALLBACK one counts only when no other is an
    ancestor at all: a whippet is a "racer > animal" too, but first of all a dog.
    """
    paths = {offset: [offset]}
    frontier = [offset]
    while frontier:  # breadth first: each ancestor's first path is a shortest one
        following = []
        for node in frontier:
            for up in parents.get(node, ()):
                if up not in paths:
                    paths[up] = [*paths[node], up]
                    following.append(up)
        frontier = following
    found = [
        (anchors[o][1] in FALLBACK, len(path), anchors[o][0], o)
        for o, path in paths.items()
        if o in anchors
    ]
    if not found:
        return OTHER, max(paths.values(), key=len)
    *_, anchor = min(found)
    return anchors[anchor][1], paths[anchor]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet/data.noun"))
    parser.add_argument("--output", type=Path, default=OUT)
    args = parser.parse_args(argv)
    from timm.data import ImageNetInfo

    info = ImageNetInfo("imagenet-1k")
    lemmas, parents = read_wordnet(args.wordnet)
    anchors = {
        offset: (rank, category)
        for rank, (category, offsets) in enumerate(ANCHORS)
        for offset in offsets
    }
    missing = [o for o in anchors if o not in lemmas]
    if missing:
        sys.exit(f"anchor offsets not in {args.wordnet}: {missing}")
    rows = ["class_id\tsynset\tlabel\tcategory\tpath"]
    counts: collections.Counter[str] = collections.Counter()
    for class_id, synset in enumerate(info.label_names()):
        offset = int(synset[1:])
        category, path = nearest_category(offset, parents, anchors)
        counts[category] += 1
        names = " > ".join(lemmas[o][0] for o in path)
        label = info.index_to_description(class_id)
        rows.append(f"{class_id}\t{synset}\t{label}\t{category}\t{names}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(rows) + "\n", encoding="utf-8")
    for category, count in counts.most_common():
        print(f"{count:4d}  {category}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
