"""The training loop: a Trainer built complete for one run, train_one_epoch / evaluate in the torchvision-references
shape, the best checkpoint and resume points after each epoch. The run's life around it (its folder, its status,
what a failure records) is lifecycle.py; the feature-transfer cache is feature_cache.py."""

from __future__ import annotations

import math
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np
import torch
from torchvision.transforms import v2

from ..base.errors import TrainingFailed
from ..data.dataset import ImageSet, SegmentationData
from ..data.framing import COVER, framed_size
from ..data.limits import limits
from ..data.record_store import split_bytes
from ..data.transforms import Normalizer, augment_batch, make_augmentation
from ..data.unlabelled import decode_unlabelled, unlabelled_paths
from ..models import SegmentationModel, count_parameters
from ..models.device import describe_device, inference_dtype, pick_device
from ..models.losses import class_weights_for, resolved_class_weighting, segmentation_loss
from ..models.metrics import MIOU_NOTE, ConfusionMatrix
from ..runs import resume as resume_points
from ..runs.val_outputs import ValOutputs, per_image_counts, write_val_outputs
from ..runs.writer import RunWriter
from ..settings.config import TrainConfig
from .distributed import DecodeFeatures, Distributed
from .feature_cache import FeatureCache
from .preparation import PreparedModel, Regularizer, prepare
from .semi_supervised import (
    UnlabelledImages,
    as_teacher,
    consistency_loss,
    cutmix,
    mean_teacher,
    perturb_features,
    pseudo_labels,
    running_statistics_kept,
    strong_view,
    unlabelled_weight_at,
)
from .windows import bounded_logits, scoring_batch

MAX_KEPT_MAP_BYTES = 256 * 1024**2


class ComputeClock:
    """The training process's own work, in seconds: its CPU time divided by its threads on a CPU (other processes on a
    loaded server slow the wall clock, not this), its wall time on a GPU (the kernels run there). What makes "time to
    accuracy" mean the strategy rather than the machine's load or the run's place in the queue."""

    def __init__(self, device: torch.device, already: float = 0.0) -> None:
        self.on_cpu, self.already = device.type == "cpu", already  # already: spent before a resume
        self.threads = max(1, torch.get_num_threads())
        self.start_cpu, self.start_wall = time.process_time(), time.perf_counter()

    def seconds(self) -> float:
        if self.on_cpu:
            return self.already + (time.process_time() - self.start_cpu) / self.threads
        return self.already + time.perf_counter() - self.start_wall


class Cancelled(Exception):
    """The user asked the run to stop."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def amp_dtype_for(device: torch.device) -> torch.dtype | None:
    """Mixed precision on GPUs only: bf16 where supported, else fp16 (with a gradient scaler)."""
    return inference_dtype(device) if device.type == "cuda" else None


def autocast_for(device: torch.device) -> Callable:
    dtype = amp_dtype_for(device)
    return (lambda: torch.autocast("cuda", dtype=dtype)) if dtype else nullcontext


def optimizer_options(device: torch.device) -> dict:
    """AdamW's single fused kernel over all parameters where this torch has one (CPU and CUDA), instead of a
    Python loop over ~200 tensors each step (bench/README.md, 'Step speed')."""
    return {"fused": True} if device.type in ("cpu", "cuda") else {"foreach": True}


def compiles(config: TrainConfig, device: torch.device) -> bool:
    """Whether this run compiles its network (TrainConfig.compile; auto: on CUDA only, see bench/README.md)."""
    return config.compile == "on" or (config.compile == "auto" and device.type == "cuda")


def compile_network(model: SegmentationModel) -> None:
    """torch.compile (inductor) each part in place: the state_dict keys stay as they are (checkpoints, resume),
    and cached-feature runs, which call the decoder and head alone, compile those. A part inductor cannot
    compile runs eager instead of failing the run."""
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True
    for part in (model.encoder, model.decoder, model.head):
        part.compile(dynamic=False)


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def configure_process(config: TrainConfig, device: torch.device) -> None:
    """Process-wide settings, made once by the entry point that owns the process (train(), the worker, the CLI):
    CPU threads, the seed, and the GPU's fast-math switches."""
    torch.set_num_threads(config.threads or Distributed.from_env().cpu_threads())
    seed_everything(config.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


class LiveBatches:
    """Training batches through the whole network: augmented images → encoder → decoder → head."""

    def __init__(
        self,
        images: ImageSet,
        augmentation,
        normalize: Normalizer,
        device: torch.device,
        window: tuple[int, int] | None = None,
    ) -> None:
        self.images, self.augmentation, self.normalize, self.device = images, augmentation, normalize, device
        self.window = window  # resize 'crop': the training size the stored images are cut to (the augmentation does)
        self.channels_last = True  # CPU too: the depthwise convolutions run faster (bench/README.md, 'Step speed')

    def forward(self, model: SegmentationModel, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        images = self.images.images[indices].to(self.device, non_blocking=True)
        masks = self.images.masks[indices].to(self.device, non_blocking=True)
        images, masks = augment_batch(self.augmentation, images, masks)
        return model(self._inputs(images)), masks

    def _inputs(self, images: torch.Tensor) -> torch.Tensor:
        inputs = self.normalize(images)
        return inputs.contiguous(memory_format=torch.channels_last) if self.channels_last else inputs

    def consistency(
        self, model, unlabelled: ImageSet, indices: list[int], confidence: float, class_weights=None, teacher=None
    ) -> tuple:
        """(consistency loss, share of confident pixels) of unlabelled images: the weak view (a flip) labels, the
        strong view (colour, blur, CutMix) learns (semi_supervised.py). `teacher`: a mean teacher's network that
        labels instead of the model."""
        images = unlabelled.images[indices].to(self.device, non_blocking=True)
        if self.window is not None:
            crop = v2.RandomCrop(self.window)
            images = torch.stack([crop(image) for image in images])
        flipped = torch.rand(len(indices)) < 0.5
        images[flipped.to(images.device)] = images[flipped.to(images.device)].flip(-1)
        with as_teacher(teacher if teacher is not None else model) as labeller:
            labels, confident = pseudo_labels(labeller(self._inputs(images)), confidence)
        strong, labels, confident = cutmix(strong_view(images), labels, confident)
        with running_statistics_kept(model):
            strong_logits = model(self._inputs(strong))
        return consistency_loss(strong_logits, labels, confident, class_weights), confident.float().mean()


class CachedBatches:
    """Training batches from the frozen encoder's cached features: only decoder and head run."""

    def __init__(self, cache: FeatureCache, images: ImageSet, flips: bool) -> None:
        self.cache, self.images, self.flips = cache, images, flips

    def prepare(self, unlabelled: ImageSet | None = None) -> None:
        """The features in memory before the epoch's steps (outside their autocast): read from disk, or one encoder
        pass at a throughput batch; a semi-supervised run's unlabelled images too."""
        for images in (self.images, unlabelled) if unlabelled is not None else (self.images,):
            self.cache.ensure(images, flips=self.flips)

    def forward(self, decode: DecodeFeatures, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        features, masks = self.cache.batch(self.images, indices, flip=self.flips)
        return decode(features, masks.shape[-2:]), masks

    def consistency(
        self,
        decode: DecodeFeatures,
        unlabelled: ImageSet,
        indices: list[int],
        confidence: float,
        class_weights=None,
        teacher=None,
    ) -> tuple:
        """The same on cached features: the strong view is feature dropout (the images' features are cached)."""
        features, placeholder = self.cache.batch(unlabelled, indices, flip=self.flips)
        size = placeholder.shape[-2:]
        with as_teacher(DecodeFeatures(teacher) if teacher is not None else decode) as labeller:
            labels, confident = pseudo_labels(labeller(features, size), confidence)
        with running_statistics_kept(decode):
            strong_logits = decode(perturb_features(features), size)
        return consistency_loss(strong_logits, labels, confident, class_weights), confident.float().mean()


def stored_size(config: TrainConfig, data: SegmentationData) -> tuple[int, int]:
    """The size a run's images are decoded at: the training size, or with resize 'crop' the training size grown to
    the typical image's aspect (data/framing.py)."""
    return framed_size(config.size, data.typical_size()) if config.fit == COVER else config.size


def decode_progress(writer: RunWriter, what: str) -> Callable[[int, int], None]:
    """A decode's progress for the run's card and the CLI's bar, at most once a second (and at the end)."""
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - last[0] >= 1.0:
            last[0] = now
            writer.note_preparing(what, done, total)

    return report


def _load_sets(config: TrainConfig, data: SegmentationData, writer: RunWriter, device: torch.device):
    """The run's training and validation images: decoded (or read from the disk cache) at the stored size, with
    progress on the run's card; on a GPU, small ones moved there."""
    indices = data.train_indices(config.train_size, config.seed)
    started = time.perf_counter()
    stored = stored_size(config, data)
    # SEGCORE_MAX_DECODED_MB bounds both splits together: validation takes what training left of it, and a run
    # that streams its training split from disk streams its validation split too (a dataset too large for memory
    # is read a batch at a time throughout; in memory it would be only ~1 % faster: bench/README "Large datasets")
    budget = limits().max_decoded_bytes
    train_set = data.load_subset(
        "train", stored, indices, decode_progress(writer, "decoding training images"), config.fit, budget
    )
    left = 0 if train_set.on_disk else budget - split_bytes(len(train_set), stored)
    val_set = data.load("val", stored, decode_progress(writer, "decoding validation images"), config.fit, left)
    if stored != config.size:
        writer.log(
            f"aspect kept: images stored at {stored[0]}×{stored[1]} (the typical image's shape covering "
            f"{config.height}×{config.width}); training takes random {config.height}×{config.width} windows, "
            "scoring the whole stored images"
        )
    if train_set.on_disk or val_set.on_disk:
        writer.log(
            f"images read from the disk cache a batch at a time (over SEGCORE_MAX_DECODED_MB in memory): "
            f"{len(train_set)} training, {len(val_set)} validation at {config.height}×{config.width}, ready in "
            f"{time.perf_counter() - started:.1f}s"
        )
    elif device.type == "cuda":  # small datasets (within the decoded-memory budget) live on the GPU: no copy per step
        train_set, val_set = (ImageSet(s.images.to(device), s.masks.to(device), s.names) for s in (train_set, val_set))
    return train_set, val_set


def _class_weights(config: TrainConfig, data: SegmentationData, train_set: ImageSet, writer: RunWriter, device):
    weighting = resolved_class_weighting(config.class_weights, data.num_classes)
    chosen = weighting if weighting == config.class_weights else f"{config.class_weights} → {weighting}"
    class_weights = class_weights_for(weighting, train_set.masks, data.num_classes)
    if class_weights is None:
        writer.log(f"class weights ({chosen}): plain cross-entropy, every pixel counts the same")
        return None
    writer.log(
        f"class weights ({chosen}, from median class frequencies): "
        + ", ".join(f"{n} {w:.2f}" for n, w in zip(data.class_names, class_weights.tolist()))
    )
    return class_weights.to(device)


def _training_batches(config, train_set, val_set, model, normalize, device, origin: str, writer: RunWriter):
    """(batches, feature cache or None): through the whole network, or from a frozen encoder's cached features
    when nothing makes the encoder's output change between epochs."""
    augment_kind = config.resolved_augment()
    crops = tuple(train_set.images.shape[-2:]) != config.size
    live = LiveBatches(
        train_set,
        make_augmentation(augment_kind, config.size, crop=crops),
        normalize,
        device,
        config.size if crops else None,
    )
    if not config.strategy_info.caches_features:
        return live, None
    if crops:
        writer.log("feature cache off: every epoch takes other windows of the images; the encoder runs live")
    elif train_set.on_disk or val_set.on_disk:
        writer.log(
            "feature cache off: the images are read from the disk cache a batch at a time, and their features "
            "(larger than the images) would not fit the decoded-memory budget either; the frozen encoder runs live"
        )
    elif config.encoder_bn_mode() == "all" or augment_kind == "full":
        writer.log("feature cache off: BatchNorm adapts or augmentation changes every input; encoder runs live")
    else:
        build_dtype = None if config.precision == "fp32" else inference_dtype(device)
        cache = FeatureCache(model, normalize, device, build_dtype, origin=origin, log=writer.log)
        return CachedBatches(cache, train_set, flips=augment_kind == "flip"), cache
    return live, None


def _unlabelled_images(config: TrainConfig, data: SegmentationData, writer: RunWriter, cached: bool):
    """A semi-supervised run's unlabelled images, decoded once at the training size; None for a supervised run."""
    if not config.unlabelled:
        return None
    paths = unlabelled_paths(data, config.unlabelled, config.train_size, config.seed)
    writer.log(
        f"semi-supervised: {len(paths)} unlabelled images ({config.unlabelled}), {config.unlabelled_ratio} per "
        f"labelled image a step, pseudo-labels at confidence ≥ {config.confidence}, weight {config.unlabelled_weight}"
        + (f" from a mean teacher (momentum {config.teacher_momentum})" if config.teacher_momentum > 0 else "")
        + ("; strong view: feature dropout on the cached features" if cached else "")
    )
    return UnlabelledImages(decode_unlabelled(paths, stored_size(config, data), config.fit), config.seed)


@dataclass
class Trainer:
    """Everything one run needs between epochs, built complete by `Trainer.build`; `fit` runs the epochs."""

    config: TrainConfig
    writer: RunWriter
    data: SegmentationData
    device: torch.device
    train_set: ImageSet
    val_set: ImageSet
    model: SegmentationModel
    origin: str
    groups: list[dict]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    regularizer: Regularizer
    normalize: Normalizer
    batches: LiveBatches | CachedBatches
    cache: FeatureCache | None
    unlabelled: UnlabelledImages | None  # semi-supervised training's images (None: supervised only)
    class_weights: torch.Tensor | None
    steps_per_epoch: int
    epochs: int
    total_steps: int
    trainable: int
    dist: Distributed
    net: torch.nn.Module  # what a training step calls: the model, or decoder + head on cached features; DDP-wrapped
    should_stop: Callable[[], bool] = lambda: False
    step: int = 0
    teacher: torch.nn.Module | None = None  # semi-supervised with a mean teacher: the averaged model (an AveragedModel)

    @classmethod
    def build(
        cls,
        config: TrainConfig,
        data: SegmentationData,
        writer: RunWriter,
        should_stop: Callable[[], bool] | None = None,
    ) -> Trainer:
        dist = Distributed.from_env()
        device = dist.device(pick_device(config.device))
        train_set, val_set = _load_sets(config, data, writer, device)
        prepared: PreparedModel = prepare(config, data.num_classes)
        # channels_last before any DDP wrapper is made, so its gradient buckets see the final parameter layout
        model = dist.prepare_model(prepared.model.to(device, memory_format=torch.channels_last), device)
        for note in prepared.notes:
            writer.log(note)
        # λR(w) is applied by Regularizer
        optimizer = torch.optim.AdamW(prepared.param_groups, weight_decay=0.0, **optimizer_options(device))
        images_per_process = dist.shard_size(len(train_set))  # each of N processes steps through its shard
        steps_per_epoch = config.steps_per_epoch(images_per_process)
        epochs = config.planned_epochs(images_per_process)
        total_steps = config.planned_steps(images_per_process)
        warmup = min(total_steps // 2, round(config.warmup_epochs * steps_per_epoch))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, max(1, warmup)))
        class_weights = _class_weights(config, data, train_set, writer, device)
        normalize = Normalizer(**model.data_config(), device=device)
        batches, cache = _training_batches(
            config, train_set, val_set, model, normalize, device, prepared.origin, writer
        )
        unlabelled = _unlabelled_images(config, data, writer, cached=cache is not None)
        if compiles(config, device):
            compile_network(model)
            writer.log("network compiled with torch.compile (inductor): the first steps include the compilation")
        return cls(
            config=config,
            writer=writer,
            data=data,
            device=device,
            train_set=train_set,
            val_set=val_set,
            model=model,
            origin=prepared.origin,
            groups=prepared.param_groups,
            optimizer=optimizer,
            scheduler=scheduler,
            regularizer=Regularizer(model, prepared.param_groups, prepared.reference, config.weight_decay),
            normalize=normalize,
            batches=batches,
            cache=cache,
            unlabelled=unlabelled,
            class_weights=class_weights,
            steps_per_epoch=steps_per_epoch,
            epochs=epochs,
            total_steps=total_steps,
            trainable=count_parameters(model, trainable_only=True),
            dist=dist,
            net=dist.wrap(DecodeFeatures(model) if cache else model),
            should_stop=should_stop or (lambda: False),
            teacher=mean_teacher(model, config.teacher_momentum) if unlabelled is not None else None,
        )

    @property
    def on_gpu(self) -> bool:
        return self.device.type == "cuda"

    @cached_property
    def amp_dtype(self) -> torch.dtype | None:
        return None if self.config.precision == "fp32" else amp_dtype_for(self.device)

    @cached_property
    def scaler(self) -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None

    def autocast(self):
        return torch.autocast("cuda", dtype=self.amp_dtype) if self.amp_dtype else nullcontext()

    def step_autocast(self):
        """The training step's precision (TrainConfig.precision): the device's autocast; on a CPU with native bf16,
        bf16 for the decoder on cached features under auto (1.35× per epoch there) and for the whole network under
        bf16 (about a quarter less memory, 16–23 % slower on the 2-core dev CPU: bench/README.md). Evaluation stays in full precision on a
        CPU, so the run's mIoU is what `segcore eval` recomputes."""
        cpu_bf16 = self.device.type == "cpu" and inference_dtype(self.device) == torch.bfloat16
        if cpu_bf16 and (self.config.precision == "bf16" or self.config.precision == "auto" and self.cache is not None):
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return self.autocast()

    # -- one epoch ----------------------------------------------------------------------------
    def _check_loss(self, value: float, epoch: int) -> None:
        if not math.isfinite(value):
            raise TrainingFailed(
                f"the training loss became {value} at epoch {epoch}, step {self.step}: "
                "the learning rate is probably too high — lower it (e.g. ÷10) and train again"
            )

    def _apply_frozen_warmup(self, epoch: int) -> None:
        """Strategies with a frozen warm-up train the first `freeze_epochs` epochs with the encoder frozen."""
        config, model = self.config, self.model
        if not (config.strategy_info.frozen_warmup and config.freeze_epochs):
            return
        if epoch <= config.freeze_epochs and not model.encoder_frozen:
            model.freeze_encoder(config.encoder_bn_mode())
        elif epoch > config.freeze_epochs and model.encoder_frozen:
            model.unfreeze_encoder()
            self.writer.log(f"epoch {epoch}: encoder unfrozen")
        else:
            return
        if self.dist.active:  # DDP reduces the gradients of the parameters that learned when it was built
            self.net = self.dist.wrap(model)

    @property
    def teacher_network(self) -> torch.nn.Module | None:
        """The network a mean teacher labels with (None: the model labels its own unlabelled images)."""
        return self.teacher.module if self.teacher is not None else None

    def _optimise(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        self.regularizer.step()
        self.scheduler.step()

    def train_one_epoch(self, epoch: int) -> float:
        config = self.config
        self._apply_frozen_warmup(epoch)
        self.model.train()
        if isinstance(self.batches, CachedBatches):
            self.batches.prepare(self.unlabelled.set if self.unlabelled is not None else None)
        if self.dist.active:
            order = self.dist.shard(len(self.train_set), config.seed, epoch)
        else:
            order = torch.randperm(len(self.train_set)).tolist()
        losses, seen, started = [], 0, time.perf_counter()
        for batch_start in range(0, len(order), config.batch_size):
            if self.dist.any(self.should_stop()):
                raise Cancelled()
            if config.max_steps and self.step >= config.max_steps:
                break
            indices = order[batch_start : batch_start + config.batch_size]
            extra = {}
            with self.step_autocast():
                logits, masks = self.batches.forward(self.net, indices)
                loss = segmentation_loss(logits, masks, config.dice_weight, self.class_weights)
                if self.unlabelled is not None:  # semi-supervised: the consistency loss of unlabelled images
                    picked = self.unlabelled.next_indices(config.unlabelled_ratio * len(indices))
                    unsupervised, confident = self.batches.consistency(
                        self.net,
                        self.unlabelled.set,
                        picked,
                        config.confidence,
                        self.class_weights,
                        self.teacher_network,
                    )
                    weight = unlabelled_weight_at(config, self.step, self.total_steps)
                    extra = {"sup_loss": float(loss.detach()), "unsup_loss": float(unsupervised.detach())}
                    extra.update(confident=float(confident), unsup_weight=weight)
                    loss = loss + weight * unsupervised
            value = self.dist.mean(float(loss.detach()))  # the one host sync of a step
            self._check_loss(value, epoch)
            self._optimise(loss)
            if self.teacher is not None:
                self.teacher.update_parameters(self.model)
            self.step += 1
            self.dist.record_checksum(self.model, self.step)
            seen += len(indices) * self.dist.world
            losses.append(value)
            self.writer.log_metrics(
                {
                    "kind": "step",
                    "epoch": epoch,
                    "epochs": self.epochs,
                    "step": self.step,
                    "total_steps": self.total_steps,
                    "loss": value,
                    "lr": self.optimizer.param_groups[-1]["lr"],
                    "images_per_s": seen / max(time.perf_counter() - started, 1e-9),
                    **extra,
                }
            )
        return float(np.mean(losses)) if losses else float("nan")

    @torch.inference_mode()
    def evaluate(self, images: ImageSet | None = None, keep_maps: bool = False) -> dict:
        """Metrics of `images` (default: the validation split); with keep_maps, also "maps": every image's class
        map (uint8, on the CPU) for the run's validation outputs (one process only: each DDP rank sees a share)."""
        images = images or self.val_set
        self.model.eval()
        self.dist.sync_buffers(self.model)
        matrix = ConfusionMatrix(self.data.num_classes)
        height, width = images.images.shape[-2:]
        # no larger than a training batch: tensors of the sizes training freed are reused, not new heap grown
        batch = scoring_batch(self.config.batch_size, height, width)
        share = self.dist.eval_range(len(images))  # every image once over all processes
        maps = []
        for start in range(share.start, share.stop, batch):
            stop = min(start + batch, share.stop)
            masks = images.masks[start:stop]
            if self.cache is not None and images is self.val_set:
                with self.autocast():
                    features, _ = self.cache.batch(images, range(start, stop), flip=False)
                    logits = self.model.decode(features, masks.shape[-2:])
            else:  # an image larger than a scoring pass may be is scored in windows of the training size
                inputs = self.normalize(images.images[start:stop].to(self.device))
                logits = bounded_logits(self.model, inputs, self.config.size, self.autocast)
            predicted = logits.argmax(1)
            matrix.update(masks, predicted)
            if keep_maps:
                maps.append(predicted.to(torch.uint8).cpu())
        matrix.matrix = self.dist.sum_counts(matrix.matrix)
        metrics = matrix.compute()
        if keep_maps:
            metrics["maps"] = torch.cat(maps).numpy() if maps else None
        return metrics

    def keeps_val_maps(self) -> bool:
        """Whether the best epoch's validation maps are kept for the run's outputs: one process, and a split small
        enough to hold (larger ones are computed on first view)."""
        height, width = self.config.size
        return not self.dist.active and len(self.val_set) * height * width <= MAX_KEPT_MAP_BYTES

    def val_outputs(self, maps) -> ValOutputs:
        truths = self.val_set.masks[:].cpu().numpy()
        intersection, union = per_image_counts(maps, truths, self.data.num_classes)
        return ValOutputs(maps, intersection, union, list(self.val_set.names))

    # -- the whole run ------------------------------------------------------------------------
    def checkpoint_meta(self, epoch: int, metrics: dict) -> dict:
        config = self.config
        return {
            "backbone": config.backbone,
            "num_classes": self.data.num_classes,
            "classes": self.data.class_names,
            "colours": self.data.class_colours,
            "strategy": config.strategy,
            "height": config.height,
            "width": config.width,
            "resize": config.resize,
            "stored": list(stored_size(config, self.data)),  # the size its validation images were scored at
            "decoder_channels": list(self.model.decoder_channels()),
            **self.model.data_config(),
            "epoch": epoch,
            "miou": metrics["miou"],
            "run_id": self.writer.run_id,
        }

    def save_resume_point(self, epoch: int, best: dict, elapsed: float, compute_s: float = 0.0) -> None:
        """Everything needed to continue after `epoch` as if never interrupted: weights, optimiser,
        schedule, random state — as one consistent point (resume.py: both pieces, then the manifest naming them)."""
        if not self.dist.is_main:
            return
        weights = {key: value.detach().to("cpu").contiguous() for key, value in self.model.state_dict().items()}
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": torch.get_rng_state(),
            "best": best,
            "elapsed": elapsed,
            "compute": compute_s,
        }
        if self.on_gpu:
            state["cuda_rng"] = torch.cuda.get_rng_state()
        resume_points.save_resume_point(self.writer.path, weights, state, epoch, self.step)

    def load_resume_point(self) -> tuple[int, dict, float]:
        """(next epoch, best so far, time already spent) from the last resume point, if there is a whole one."""
        point, why_not = resume_points.read_resume_point(self.writer.path)
        if point is None:
            self.writer.log(f"{why_not}: starting from the beginning")
            if why_not != "no resume point saved yet":
                resume_points.logger.warning("%s: resume point not used: %s", self.writer.path, why_not)
            return 1, {"miou": -1.0}, 0.0
        weights, state = resume_points.load_resume_point(point)
        self.model.load_state_dict(weights)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        if self.on_gpu and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"])
        self.step = point.step
        self.writer.log(f"resumed after epoch {point.epoch} (step {self.step})")
        self.compute_before = float(state.get("compute", 0.0))  # points saved before compute time was kept: 0
        return point.epoch + 1, state["best"], state["elapsed"]

    def fit(self, resume: bool = False) -> dict:
        config, writer = self.config, self.writer
        started = time.time()
        self.compute_before = 0.0
        processes = f" × {self.dist.world} processes (DDP)" if self.dist.active else ""
        writer.log(f"device: {describe_device(self.device)}{processes}; encoder: {self.origin}")
        writer.log(
            f"{len(self.train_set)} training images, {len(self.val_set)} validation images, "
            f"{self.trainable:,} trainable parameters, augmentation: {config.resolved_augment()}"
        )
        first_epoch, best, spent = self.load_resume_point() if resume else (1, {"miou": -1.0}, 0.0)
        started -= spent
        compute = ComputeClock(self.device, self.compute_before)
        if self.cache is not None:
            self.cache.ensure(self.val_set, flips=False, exact=True)
        if self.epochs > config.epochs:
            writer.log(
                f"small training set: {self.epochs} epochs instead of {config.epochs}, so that it gets "
                f"at least {config.min_steps} optimiser steps ({self.steps_per_epoch} per epoch)"
            )
        for epoch in range(first_epoch, self.epochs + 1):
            epoch_started = time.perf_counter()
            train_loss = self.train_one_epoch(epoch)
            epoch_train_time = time.perf_counter() - epoch_started
            metrics = self.evaluate(keep_maps=self.keeps_val_maps())
            maps = metrics.pop("maps", None)
            epoch_time = time.perf_counter() - epoch_started
            record = {
                "kind": "epoch",
                "epoch": epoch,
                "epochs": self.epochs,
                "train_loss": train_loss,
                **metrics,
                "epoch_time_s": epoch_time,
                "compute_s": compute.seconds(),  # this process's own work: what the strategy cost, whatever the load
                "images_per_s": len(self.train_set) / max(epoch_train_time, 1e-9),
                "eta_s": epoch_time * (self.epochs - epoch),
            }
            writer.log_metrics(record)
            writer.log(
                f"epoch {epoch}/{self.epochs}: loss {train_loss:.4f}, mIoU {metrics['miou']:.3f}, "
                f"pixel acc {metrics['pixel_accuracy']:.3f}, {epoch_time:.1f}s"
            )
            if metrics["miou"] > best["miou"]:
                best = {**metrics, "epoch": epoch}
                if self.dist.is_main:
                    writer.save_best_checkpoint(self.model, self.checkpoint_meta(epoch, metrics))
                    if maps is not None:  # the best model's predictions: what Compare shows, without a forward pass
                        write_val_outputs(writer.path, self.val_outputs(maps))
            self.save_resume_point(epoch, best, time.time() - started, compute.seconds())
            if config.max_steps and self.step >= config.max_steps:
                break
        return {
            "strategy": config.strategy,
            "backbone": config.backbone,
            "data": config.data,
            "epochs": self.epochs,
            "steps": self.step,
            "best_epoch": best.get("epoch"),
            "miou": best["miou"],
            "pixel_accuracy": best.get("pixel_accuracy"),
            "mean_dice": best.get("mean_dice"),
            "per_class_iou": best.get("per_class_iou"),
            "classes": self.data.class_names,
            "train_time_s": time.time() - started,
            "compute_time_s": compute.seconds(),
            "trainable_params": self.trainable,
            "total_params": count_parameters(self.model),
            "train_images": len(self.train_set),
            "val_images": len(self.val_set),
            "device": str(self.device),
            "encoder_origin": self.origin,
            "miou_note": MIOU_NOTE,
            "processes": self.dist.world,
        }
