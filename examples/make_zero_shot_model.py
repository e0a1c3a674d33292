"""Save a random CLIP, SigLIP or SigLIP 2 model (tiny, or CLIP ViT-B/32 at full size) with its
tokenizer and image processor, for trying --labels offline.

    python examples/make_zero_shot_model.py /tmp/tiny-clip            # or --kind siglip, siglip2
    resnet-classify -m /tmp/tiny-clip --offline --labels 'cat, coffee, person' examples/images/

Real zero-shot models (openai/clip-vit-base-patch32, google/siglip-base-patch16-224) are
downloaded from the hub on first use; these are for machines without a network. Their answers
are random, but every code path is the real one, and ``transformers.pipeline(
"zero-shot-image-classification")`` loads them too. The tokenizer (WordPiece: a few words,
and characters for the rest, so any label gets tokens of its own) is built with the
``tokenizers`` library, so nothing is downloaded.
"""

from __future__ import annotations

import argparse
import math
import string
from typing import Any

import numpy as np
import torch

KINDS = ("clip", "siglip", "siglip2")
# What the logits are tuned on, so that such labels get clearly different scores.
LABELS = ["cat", "dog", "person", "receipt", "screenshot", "food", "landscape", "car"]
# Logits spread about this much across labels (the standard deviation): CLIP's trained logit
# scale (100) on the nearly equal cosines of random towers would give nearly equal scores.
LOGIT_SPREAD = 3.0

_TINY_VISION = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "patch_size": 16,
}
_TINY_TEXT = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}


def build_tokenizer(max_length: int, *, bos: bool) -> Any:
    """A WordPiece tokenizer (lower case, accents stripped): the template's words and LABELS
    are one token each, as in a real model's vocabulary; any other word is spelled out in
    characters, so every label gets tokens of its own. Ids: pad 0, unk 1, then bos 2 (CLIP's
    <|startoftext|>, where ``bos``), eos, then the words and characters."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", *(["<|startoftext|>"] if bos else []), "<|endoftext|>"]
    characters = string.ascii_lowercase + string.digits + string.punctuation
    words = ["this", "is", "a", "photo", "of", "picture", *LABELS]
    pieces = [*specials, *words, *characters, *(f"##{c}" for c in characters)]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(pieces))}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFD(), normalizers.StripAccents(), normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()  # words and punctuation
    eos = ("<|endoftext|>", vocab["<|endoftext|>"])
    if bos:
        start = ("<|startoftext|>", vocab["<|startoftext|>"])
        template = processors.TemplateProcessing(
            single="<|startoftext|> $A <|endoftext|>", special_tokens=[start, eos]
        )
    else:  # SigLIP's: an end-of-sequence token only, no attention mask
        template = processors.TemplateProcessing(single="$A <|endoftext|>", special_tokens=[eos])
    tokenizer.post_processor = template
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        unk_token="<unk>",
        eos_token="<|endoftext|>",
        bos_token="<|startoftext|>" if bos else None,
        model_max_length=max_length,
        model_input_names=["input_ids", "attention_mask"] if bos else ["input_ids"],
    )


def save_zero_shot_model(
    folder: str, *, kind: str = "clip", full_size: bool = False, seed: int = 0
) -> str:
    """Save a random ``kind`` model (tiny: 64-pixel images; ``full_size``: CLIP ViT-B/32's
    architecture) with its tokenizer and image processor to ``folder``."""
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        Siglip2Config,
        Siglip2ImageProcessor,
        Siglip2Model,
        SiglipConfig,
        SiglipImageProcessor,
        SiglipModel,
    )

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    if full_size and kind != "clip":
        raise ValueError("full_size is CLIP ViT-B/32")
    torch.manual_seed(seed)
    clip = kind == "clip"
    max_length = 77 if clip else 64  # CLIP's context; SigLIP pads every text to 64
    tokenizer = build_tokenizer(max_length, bos=clip)
    ids = {"pad_token_id": 0, "eos_token_id": tokenizer.eos_token_id}
    if clip:
        ids["bos_token_id"] = tokenizer.bos_token_id
    text: dict[str, Any] = {**ids, "max_position_embeddings": max_length}
    vision: dict[str, Any] = {}
    if not full_size:
        text.update(_TINY_TEXT, vocab_size=len(tokenizer))
        vision.update(_TINY_VISION)
    model: Any
    if clip:
        if not full_size:
            vision["image_size"] = 64
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=32))
        size = 224 if full_size else 64
        processor: Any = CLIPImageProcessor(
            size={"shortest_edge": size}, crop_size={"height": size, "width": size}
        )
    elif kind == "siglip":
        vision["image_size"] = 64
        model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
        processor = SiglipImageProcessor(size={"height": 64, "width": 64})
    else:
        vision["num_patches"] = 16
        model = Siglip2Model(Siglip2Config(text_config=text, vision_config=vision))
        processor = Siglip2ImageProcessor(patch_size=16, max_num_patches=16)
    model.eval()
    _spread_logits(model, processor, tokenizer, kind)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _spread_logits(model: Any, processor: Any, tokenizer: Any, kind: str) -> None:
    """Answers that differ from image to image and from label to label. Random towers give
    every image (and every sentence) nearly the same embedding, so the part they share is
    taken out of each tower's last bias; then a logit scale (and for SigLIP a bias) spreads
    the logits about LOGIT_SPREAD, SigLIP's centred on 0 (scores around 0.5)."""
    clip = kind == "clip"
    vision, text_tower = model.vision_model, model.text_model
    image_bias = vision.post_layernorm.bias if clip else vision.head.mlp.fc2.bias
    text_bias = text_tower.final_layer_norm.bias if clip else text_tower.head.bias
    padding: dict[str, Any] = (
        {"padding": True} if clip else {"padding": "max_length", "max_length": 64}
    )
    sentences = [f"This is a photo of {label}." for label in LABELS]
    with torch.no_grad():
        image = processor(images=_pictures(8), return_tensors="pt")
        text = tokenizer(sentences, return_tensors="pt", **padding)
        image_bias.sub_(vision(**image).pooler_output.mean(dim=0))
        if clip:  # the text projection has no bias: centre what it projects
            text_bias.sub_(text_tower(**text).pooler_output.mean(dim=0))
        else:
            text_bias.sub_(_embedding(model.get_text_features(**text)).mean(dim=0))
        text_embeds = _normalized(model.get_text_features(**text))
        image_embeds = _normalized(model.get_image_features(**image))
        cosine = image_embeds @ text_embeds.t()
        model.logit_scale.fill_(math.log(LOGIT_SPREAD / max(float(cosine.std()), 1e-6)))
        if not clip:
            model.logit_bias.fill_(-float(cosine.mean()) * float(model.logit_scale.exp()))


def _pictures(count: int) -> list[Any]:
    """Smooth, different pictures (waves of colour) to tune the model on."""
    from PIL import Image

    rng = np.random.default_rng(0)
    pictures = []
    y, x = np.mgrid[0:96, 0:128].astype(np.float32)
    for _ in range(count):
        waves = [np.sin(x / rng.uniform(5, 40) + rng.uniform(0, 6)) for _ in range(3)]
        pixels = np.stack([127 + 100 * w * np.cos(y / rng.uniform(5, 40)) for w in waves], -1)
        pictures.append(Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB"))
    return pictures


def _embedding(output: Any) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _normalized(output: Any) -> torch.Tensor:
    embeds = _embedding(output)
    return embeds / embeds.norm(dim=-1, keepdim=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", default="tiny-clip")
    parser.add_argument("--kind", choices=KINDS, default="clip")
    parser.add_argument("--full-size", action="store_true", help="CLIP ViT-B/32's architecture")
    arguments = parser.parse_args()
    print(
        save_zero_shot_model(arguments.folder, kind=arguments.kind, full_size=arguments.full_size)
    )
