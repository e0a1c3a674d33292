"""Batched, pipelined inference: sources -> decoded -> batches -> model -> top-k, in order.

Decoding and preprocessing run in a pool of threads (Pillow, libjpeg and torch release the
GIL) while the main thread runs the model, so the model does not wait for the decoder. At most
a bounded number of inputs is in flight, so memory does not grow with the number of inputs.
Records come out in input order, a batch at a time.

Where the run's decode steps are known from the checkpoint's files, decoding starts while the
model loads (``decode_ahead``), so the decode threads' work is not on the cores the model
needs later; the loaded classifier takes those images only where its own steps are the same
(``Decoding.adopt``), else they are decoded anew.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..categories import categories_for
from ..errors import ImageError
from ..inputs.decode import (
    DEFAULT_MAX_PIXELS,
    JPEG_END,
    ResizeRule,
    decode_image,
    jpeg_frame,
    read_file,
)
from ..inputs.sources import Source
from ..results import Prediction, Record
from ..runtimes.device_io import (
    apply_orientation,
    decode_on_device,
    predict_splitting_on_oom,
    to_host,
)

if TYPE_CHECKING:
    from ..models.checkpoint import ArrayConvNextProcessor
    from ..runtimes.loaded import Classifier
    from ..runtimes.select import Plan


@dataclass
class Slot:
    """One input's place in a batch: a decoded image, JPEG bytes to decode on the device, its
    model-ready pixels, or the error that stopped it."""

    name: str
    image: Any = None
    pixels: Any = None
    jpeg: bytes | None = None
    orientation: int = 1  # EXIF orientation of ``jpeg``, applied after decoding on the device
    error: str | None = None
    true_label: str | None = None  # the source's, for its record


class LaunchedBatch:
    """A batch whose forward pass has been queued; ``records()`` waits for it.

    ``groups``: (slot indices, scores, class ids) for each forward pass. On a GPU the results
    are copied to the host without blocking as soon as they are queued, and ``records()``
    waits for that copy alone: not for the next batch's forward pass, which is queued behind
    it by then (a plain ``.tolist()`` would wait for the whole stream).
    """

    def __init__(self, slots: list[Slot], groups: list[tuple[list[int], Any, Any]]):
        self.slots = slots
        self.groups = [(indices, *to_host(scores, ids)) for indices, scores, ids in groups]

    def records(
        self, labels: list[str], categories: Sequence[str] | None = None, min_score: float = 0.0
    ) -> list[Record]:
        """The batch's records; predictions scoring under ``min_score`` are left out."""
        fetched: dict[int, tuple[list[float], list[int]]] = {}
        for indices, scores, ids, copied in self.groups:
            if copied is not None:
                copied.synchronize()
            # One conversion per group, not per row: a row of a device tensor is a copy each.
            rows = zip(scores.tolist(), ids.tolist(), strict=True)
            fetched.update(zip(indices, rows, strict=True))
        out: list[Record] = []
        for i, slot in enumerate(self.slots):
            if slot.error is not None:
                out.append(Record(slot.name, error=slot.error, true_label=slot.true_label))
                continue
            scores, ids = fetched[i]
            if min_score > 0:  # scores come best first: the ones kept are a prefix
                kept = sum(s >= min_score for s in scores)
                scores, ids = scores[:kept], ids[:kept]
            # Positional, from a list: this runs five times an image.
            if categories is None:
                predictions = [
                    Prediction(rank, labels[c], s, c)
                    for rank, (s, c) in enumerate(zip(scores, ids, strict=True), start=1)
                ]
            else:
                predictions = [
                    Prediction(rank, labels[c], s, c, categories[c])
                    for rank, (s, c) in enumerate(zip(scores, ids, strict=True), start=1)
                ]
            out.append(Record(slot.name, tuple(predictions), true_label=slot.true_label))
        return out


def classify_batches(
    classifier: Classifier,
    sources: Iterable[Source],
    *,
    top_k: int = 5,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    device_decode: bool | None = None,
    categories: bool = True,
    min_score: float = 0.0,
    ahead: Decoding | None = None,
) -> Iterator[list[Record]]:
    """Classify sources in order, yielding the records of each batch as it finishes, in
    batches of the classifier's plan's ``batch_size``, decoded by its ``workers`` threads
    (``load_classifier(batch_size=, workers=)`` sets them where asked).

    ``categories``: give each prediction its coarse category when the model's labels are the
    ImageNet-1k classes (``categories.categories_for``); never for other label sets.
    ``min_score``: leave out the predictions that score under it; a record may then have
    none (``results.needs_review`` calls it doubtful).

    ``device_decode``: decode JPEGs in batches on the model's device (nvJPEG on CUDA) and
    preprocess there; default: on for CUDA unless the classifier is exact. Any image the
    device decoder cannot take goes through the CPU path instead.

    ``ahead``: the decoding ``decode_ahead`` started on ``sources`` while the model loaded;
    its images are used where its steps are the classifier's, else decoded anew.
    """
    if top_k < 1:
        raise ValueError("top_k must be at least 1")
    if not 0.0 <= min_score <= 1.0:
        raise ValueError("min_score must be between 0 and 1")
    plan = classifier.plan
    size = plan.batch_size
    table = categories_for(classifier.labels) if categories else None
    steps = DecodeSteps.of(classifier, max_pixels, device_decode)
    # Enough inputs in flight to keep every worker busy while a batch runs, and no more.
    in_flight = size + 2 * steps.workers
    # Inputs go to the workers a few at a time where batches are big (GPUs): a task per
    # input costs the main thread more than the model's share of an image there.
    chunk = max(1, min(16, size // (4 * steps.workers)))
    if ahead is not None:
        decoding = ahead.adopt(steps, in_flight, chunk)
    else:
        decoding = Decoding(steps, iter(sources), in_flight, chunk)
    finished = False
    previous: LaunchedBatch | None = None
    slots: list[Slot] = []
    ready = 0
    # --precision int8 on a first run: the first images are held back to calibrate on.
    calibrating = classifier.calibration_images
    try:
        while (future := decoding.next()) is not None:
            if previous is not None and not future.done():
                # The next input is not ready: hand over the finished batch now rather than
                # hold it back (an input that never arrives must not hide finished records).
                yield previous.records(classifier.labels, table, min_score)
                previous = None
            for slot in future.result():
                slots.append(slot)
                ready += slot.error is None
                if calibrating:
                    if ready < calibrating:
                        continue
                    calibrate(classifier, slots)
                    calibrating = 0
                    held, slots = split_batches(slots, size)
                    ready = sum(s.error is None for s in slots)
                    for batch in held:
                        launched = launch_batch(classifier, batch, top_k)
                        if previous is not None:
                            yield previous.records(classifier.labels, table)
                        previous = launched
                    continue
                # A long run of failures is flushed too, so its records are not held back.
                if ready == size or len(slots) >= 4 * size:
                    launched = launch_batch(classifier, slots, top_k)
                    if previous is not None:
                        yield previous.records(classifier.labels, table, min_score)
                    previous, slots, ready = launched, [], 0
        if calibrating:  # the input ended before enough images to calibrate on
            calibrate(classifier, slots)
        held, slots = split_batches(slots, size)
        for batch in [*held, slots] if slots else held:
            launched = launch_batch(classifier, batch, top_k)
            if previous is not None:
                yield previous.records(classifier.labels, table, min_score)
            previous = launched
        if previous is not None:
            yield previous.records(classifier.labels, table, min_score)
        finished = True
    finally:
        # Interrupted or abandoned: do not wait for a worker that may be stuck reading
        # (a slow network mount, a pipe); the caller has what it needs.
        decoding.close(wait=finished)


@dataclass(frozen=True)
class DecodeSteps:
    """What the decode threads do to each input, and how many of them there are.

    ``resize``: the model's first resize (libjpeg downscales in the DCT domain to it);
    ``preprocess``: the processor whose NumPy ``prepare`` runs in the threads (None: the main
    thread preprocesses whole batches); ``device_decode``: plain JPEGs are left for the
    device to decode; ``offline``: a URL input is an error, not downloaded."""

    resize: ResizeRule | None
    preprocess: ArrayConvNextProcessor | None
    max_pixels: int | None
    device_decode: bool
    offline: bool
    workers: int

    @classmethod
    def of(
        cls, classifier: Classifier, max_pixels: int | None, device_decode: bool | None = None
    ) -> DecodeSteps:
        """The loaded classifier's steps (``device_decode``: None, as its plan says)."""
        processor = classifier.threads_processor
        if device_decode is None:
            device_decode = classifier.plan.device_decode
        return cls(
            resize=classifier.resize,
            preprocess=processor,
            max_pixels=max_pixels,
            # Device decoding hands the processor torch tensors: not for a NumPy processor.
            device_decode=device_decode and processor is None,
            offline=classifier.offline,
            workers=classifier.plan.workers,
        )

    def same_as(self, other: DecodeSteps) -> bool:
        """Whether an image decoded by ``other`` is what these steps make of it."""
        if (self.resize, self.max_pixels, self.device_decode, self.offline, self.workers) != (
            other.resize,
            other.max_pixels,
            other.device_decode,
            other.offline,
            other.workers,
        ):
            return False
        if self.preprocess is None or other.preprocess is None:
            return self.preprocess is other.preprocess
        return self.preprocess.same_pixels(other.preprocess)

    def __call__(self, source: Source) -> Slot:
        return decode_source(
            source,
            resize=self.resize,
            max_pixels=self.max_pixels,
            device_decode=self.device_decode,
            preprocess=None if self.preprocess is None else self.preprocess.prepare,
            offline=self.offline,
        )


class Decoding:
    """Sources decoded by a pool of threads in order, a task of ``chunk`` inputs at a time,
    with at most ``bound`` inputs in flight (queued, decoding or decoded and not yet taken).

    The main thread hands the workers their inputs, unless ``feeding`` (decoding ahead of the
    model's load): then a thread of its own does, so that the main thread goes on loading
    while the inputs are read (stdin may be a slow pipe), until ``adopt``. It stops at the
    first URL: downloading imports modules that the loading main thread may be importing too
    (two threads importing one module can meet a half-initialized one), so URLs wait."""

    def __init__(
        self,
        steps: DecodeSteps,
        sources: Iterator[Source],
        bound: int,
        chunk: int,
        feeding: bool = False,
    ):
        self.steps, self.stream, self.bound, self.chunk = steps, sources, bound, chunk
        self.pool = ThreadPoolExecutor(max_workers=steps.workers, thread_name_prefix="decode")
        self.pending: deque[tuple[list[Source], Future[list[Slot]]]] = deque()
        self.queued = 0  # inputs in the pending tasks
        self.feeder: threading.Thread | None = None
        self.failed: BaseException | None = None  # what the feeder met reading the inputs
        if feeding:
            self.feeder = threading.Thread(target=self._feed, name="decode-feeder", daemon=True)
            self.feeder.start()

    def _feed(self) -> None:
        try:
            self.refill(until_url=True)
        except BaseException as exc:  # raised in the main thread, by ``adopt``
            self.failed = exc

    def refill(self, until_url: bool = False) -> None:
        """Hand the workers more inputs, up to the bound (``until_url``: and up to the first
        URL, which stays the next input)."""
        while self.queued < self.bound:
            taken = list(itertools.islice(self.stream, self.chunk))
            if until_url:
                urls = [i for i, source in enumerate(taken) if source.url is not None]
                if urls:
                    self.stream = itertools.chain(taken[urls[0] :], self.stream)
                    taken = taken[: urls[0]]
                    if taken:
                        self._submit(taken)
                    return
            if not taken:
                return
            self._submit(taken)

    def _submit(self, taken: list[Source]) -> None:
        self.pending.append((taken, self.pool.submit(self._decode_all, taken)))
        self.queued += len(taken)

    def _decode_all(self, sources: list[Source]) -> list[Slot]:
        return [self.steps(source) for source in sources]

    def next(self) -> Future[list[Slot]] | None:
        """The next task's slots, in input order (None: the inputs are done); the workers get
        the next inputs before it is waited for."""
        if not self.pending:
            self.refill()  # the first call, or the feeder stopped short (at a URL)
        if not self.pending:
            return None
        taken, future = self.pending.popleft()
        self.queued -= len(taken)
        self.refill()
        return future

    def adopt(self, steps: DecodeSteps, bound: int, chunk: int) -> Decoding:
        """This decoding, from now on within ``bound`` and ``chunk``, where it decodes as
        ``steps`` do; else a new one with ``steps`` over the same inputs, from the first one
        not taken (what was decoded ahead is decoded again)."""
        # The feeder stops after the read it is in (at most a chunk), once the bound is down.
        self.bound, self.chunk = min(self.bound, bound), chunk
        if self.feeder is not None:
            self.feeder.join()
            self.feeder = None
        if self.failed is not None:
            self.close(wait=False)
            raise self.failed
        if self.steps.same_as(steps):
            self.bound = bound
            return self
        self.close(wait=False)
        again = [source for sources, _ in self.pending for source in sources]
        self.pending.clear()
        return Decoding(steps, itertools.chain(again, self.stream), bound, chunk)

    def close(self, wait: bool) -> None:
        self.pool.shutdown(wait=wait, cancel_futures=True)


# What decoding ahead of the model's load may hold, decoded, at most: a few batches, and no
# more than this many bytes of model input (at 224 x 224, 110 images; for bigger inputs fewer).
AHEAD_BYTES = 64 << 20
AHEAD_BATCHES = 8


def decode_ahead(
    plan: Plan,
    files: dict[str, str] | None,
    sources: Iterator[Source],
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    offline: bool = False,
) -> Decoding | None:
    """Start decoding ``sources`` before the model loads, with the steps its checkpoint's
    files say the run will take (``plan``: the plan chosen before loading): on the CPU, with
    the processor reproduced in NumPy. None where those steps are not known before loading
    (a GPU, which decodes on the device; a processor only transformers runs)."""
    if plan.device != "cpu" or plan.device_decode or files is None:
        return None
    from ..models.checkpoint import array_processor, read_json
    from ..models.transformers import resize_rule

    try:
        processor = array_processor(files, read_json(files["config.json"]))
    except Exception:  # unreadable: loading says what is wrong with it
        return None
    if processor is None:
        return None
    # What the decode threads import on their first image, imported here first: the loading
    # main thread imports NumPy too (with its runtime), and two threads importing it at once
    # can meet it half-initialized. Pillow's common formats are needed by the first image.
    import numpy  # noqa: F401
    from PIL import Image

    Image.preinit()
    steps = DecodeSteps(
        resize=resize_rule(processor),
        preprocess=processor,
        max_pixels=max_pixels,
        device_decode=False,
        offline=offline,
        workers=plan.workers,
    )
    edge = processor.size["shortest_edge"]
    bound = max(1, min(AHEAD_BATCHES * plan.batch_size, AHEAD_BYTES // (3 * edge * edge * 4)))
    chunk = max(1, min(16, plan.batch_size // (4 * plan.workers)))  # as classify_batches's
    return Decoding(steps, sources, bound, chunk, feeding=True)


def calibrate(classifier: Classifier, slots: list[Slot]) -> None:
    """Hand the classifier the held slots' images, preprocessed, to calibrate INT8 on."""
    _preprocess(classifier, slots)
    classifier.calibrate([slot.pixels for slot in slots if slot.error is None])


def split_batches(slots: list[Slot], size: int) -> tuple[list[list[Slot]], list[Slot]]:
    """Held slots in batches of ``size`` good images each, in order, and the rest."""
    batches: list[list[Slot]] = []
    current: list[Slot] = []
    ready = 0
    for slot in slots:
        current.append(slot)
        ready += slot.error is None
        if ready == size:
            batches.append(current)
            current, ready = [], 0
    return batches, current


def classify(classifier: Classifier, sources: Iterable[Source], **options: Any) -> Iterator[Record]:
    """Classify sources in order, one record per source (see ``classify_batches``)."""
    for batch in classify_batches(classifier, sources, **options):
        yield from batch


def decode_source(
    source: Source,
    *,
    resize: ResizeRule | None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    device_decode: bool = False,
    preprocess: Callable[[Any], Any] | None = None,
    offline: bool = False,
) -> Slot:
    """One input's decode step: read its bytes and decode them (downscaled by ``resize``, the
    model's first resize); any failure becomes the slot's error, never an exception.

    ``device_decode``: leave a plain JPEG's bytes in the slot for ``launch_batch`` to decode on
    the model's device. ``offline``: a URL is an error, not downloaded. The local engine runs
    this in its decode threads, the Ray engine in its CPU tasks. The slot keeps the source's
    ``true_label``.
    """
    slot = _decode(source, resize, max_pixels, device_decode, preprocess, offline)
    slot.true_label = source.true_label
    return slot


def _decode(
    source: Source,
    resize: ResizeRule | None,
    max_pixels: int | None,
    device_decode: bool,
    preprocess: Callable[[Any], Any] | None,
    offline: bool,
) -> Slot:
    if source.error is not None:
        return Slot(source.name, error=source.error)
    try:
        if source.image is not None:
            image = source.image
        else:
            data = _read(source, offline)
            orientation = _device_decodable(data, max_pixels) if device_decode else None
            if orientation is not None:
                return Slot(source.name, jpeg=data, orientation=orientation)
            name = source.path or source.url or source.name
            image = decode_image(data, max_pixels=max_pixels, resize=resize, name=name)
        if preprocess is None:
            # Decoding only: the model's processor runs on whole batches in the main thread,
            # so torch's thread pool never competes with itself across decode threads.
            return Slot(source.name, image=image)
    except ImageError as exc:
        return Slot(source.name, error=str(exc))
    except Exception as exc:  # a bad input must never take the run down with it
        return Slot(source.name, error=f"could not decode the image: {exc}")
    try:  # a processor without torch (NumPy) runs here, in the decode threads
        return Slot(source.name, pixels=preprocess(image))
    except Exception as exc:
        return Slot(source.name, error=f"could not preprocess the image: {exc}")


def _read(source: Source, offline: bool = False) -> bytes:
    """The source's encoded bytes: in memory already, downloaded, or read from disk."""
    if source.data is not None:
        return source.data
    if source.url is not None:
        from ..inputs.fetch import fetch_url

        return fetch_url(source.url, offline=offline)
    return read_file(str(source.path))


def _device_decodable(data: bytes, max_pixels: int | None) -> int | None:
    """For a JPEG plain enough for nvJPEG (8-bit RGB or grayscale, Huffman-coded, within the
    bound), its EXIF orientation (1 when none); None for anything else. Reads the markers only."""
    # nvJPEG decodes a cut-off JPEG without a word (the missing rows grey) where Pillow, and
    # so the CPU path, refuses it: only a JPEG that ends with its EOI marker goes to the
    # device. Anything after the marker (padding, a motion photo's video) sends it to the CPU.
    if not data.endswith(JPEG_END):
        return None
    frame = jpeg_frame(data)
    if frame is None or not frame.device_decodable:
        return None
    if max_pixels is not None and frame.width * frame.height > max_pixels:
        return None
    return frame.orientation


def _decode_on_device(classifier: Classifier, slots: list[Slot], indices: list[int]) -> None:
    """Decode the slots' JPEGs as one batch on the device (preprocessing then stays there);
    an image the device decoder rejects is decoded on the CPU, and only an image no decoder
    can read becomes an error."""
    jpegs = [slots[i].jpeg or b"" for i in indices]
    decoded = decode_on_device(classifier.device, jpegs)
    for i, jpeg, image in zip(indices, jpegs, decoded, strict=True):
        slots[i].jpeg = None
        if image is not None:
            slots[i].image = apply_orientation(image, slots[i].orientation)
            continue
        try:
            slots[i].image = decode_image(jpeg, resize=classifier.resize)
        except ImageError as exc:
            slots[i].error = str(exc)


def _preprocess(classifier: Classifier, slots: list[Slot]) -> None:
    """Run the model's processor on the batch's decoded images, one call per kind of image
    (PIL, device tensor); if a call fails, image by image, so only a bad image is lost."""
    from PIL import Image

    kinds: dict[bool, list[int]] = {}
    for i, slot in enumerate(slots):
        if slot.error is None and slot.pixels is None:  # not preprocessed by a decode thread
            kinds.setdefault(isinstance(slot.image, Image.Image), []).append(i)
    for indices in kinds.values():
        try:
            pixels = classifier.preprocess([slots[i].image for i in indices])
            for row, i in enumerate(indices):
                slots[i].pixels = pixels[row]
        except Exception:
            for i in indices:
                try:
                    slots[i].pixels = classifier.preprocess([slots[i].image])[0]
                except Exception as exc:
                    slots[i].error = f"could not preprocess the image: {exc}"
        for i in indices:
            slots[i].image = None


def classify_slots(
    classifier: Classifier,
    slots: list[Slot],
    top_k: int,
    categories: bool = True,
    min_score: float = 0.0,
) -> list[Record]:
    """One batch's step: preprocess, run the model and build each slot's record, in order."""
    table = categories_for(classifier.labels) if categories else None
    return launch_batch(classifier, slots, top_k).records(classifier.labels, table, min_score)


def launch_batch(classifier: Classifier, slots: list[Slot], top_k: int) -> LaunchedBatch:
    """Queue the forward pass for a batch's good slots, grouped by tensor shape."""
    on_device = [i for i, s in enumerate(slots) if s.jpeg is not None]
    if on_device:
        _decode_on_device(classifier, slots, on_device)
    _preprocess(classifier, slots)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, slot in enumerate(slots):
        if slot.error is None:
            groups.setdefault(tuple(slot.pixels.shape), []).append(i)
    results: list[tuple[list[int], Any, Any]] = []
    for indices in groups.values():
        batch = classifier.stack([slots[i].pixels for i in indices])
        results.append((indices, *predict_splitting_on_oom(classifier, batch, top_k)))
    for slot in slots:
        slot.pixels = None  # the batch's memory can go as soon as the model has it
    return LaunchedBatch(slots, results)
