"""
The PyTorch baseline of train.bench.ts: the official SAM2-UNet train step (its SAM2UNet.py
classes, its train.py structure_loss, torch.optim.AdamW as train.py builds it) on CPU, timed
the way the benchmark times ours (one warm-up step, then the median of the rest).

The official code is read from a checkout of https://github.com/WZH0120/SAM2-UNet (it vendors
SAM2's Hiera as sam2/modeling/backbones/hieradet.py). Its SAM2UNet class builds hiera_l through
hydra; here the builder is replaced by one that returns the preset's Hiera trunk, and the RFB
input widths and head widths follow the preset and the output channels — the only departures.

Usage: python3 pytorch-train-step.py --official DIR --config JSON --batch N --size S
         --out-channels C --steps N --threads T
Prints one JSON line: torch, attention, step_ms, cpu_ms (process CPU time per step), median_step_ms, peak_rss_mb, trainable, losses.
"""
import argparse
import ast
import json
import os
import resource
import sys
import time
import types

parser = argparse.ArgumentParser()
parser.add_argument("--official", required=True)
parser.add_argument("--config", required=True, help="Hiera preset as JSON (the project's HIERA_PRESETS entry)")
parser.add_argument("--batch", type=int, required=True)
parser.add_argument("--size", type=int, required=True)
parser.add_argument("--out-channels", type=int, default=1)
parser.add_argument("--steps", type=int, default=3)
parser.add_argument("--threads", type=int, default=2)
args = parser.parse_args()

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(0)
config = json.loads(args.config)
sys.path.insert(0, args.official)

# sam2/__init__.py initialises hydra's config store, and SAM2UNet.py imports build_sam2: neither is
# used here (the trunk is built directly), so they are stood in for when not installed.
try:
    import hydra  # noqa: F401
except ImportError:
    hydra = types.ModuleType("hydra")
    hydra.initialize_config_module = lambda *a, **k: None
    sys.modules["hydra"] = hydra

# SAM2's attention calls F.scaled_dot_product_attention (PyTorch ≥ 2.0); Debian's torch 1.13 lacks
# it, so it gets the composition PyTorch 2 itself falls back to on CPU (its "math" kernel)
SDPA = "native"
if not hasattr(torch.nn.functional, "scaled_dot_product_attention"):
    SDPA = "math (torch < 2.0)"

    def _sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False):
        assert attn_mask is None and dropout_p == 0.0 and not is_causal
        return torch.softmax((q * q.size(-1) ** -0.5) @ k.transpose(-2, -1), dim=-1) @ v

    torch.nn.functional.scaled_dot_product_attention = _sdpa

from sam2.modeling.backbones.hieradet import Hiera  # noqa: E402


class _Sam2Stub(nn.Module):
    """What SAM2UNet.__init__ takes from build_sam2: the trunk, and the modules it deletes."""

    def __init__(self):
        super().__init__()
        trunk = Hiera(
            embed_dim=config["embed_dim"],
            num_heads=config["num_heads"],
            stages=tuple(config["stages"]),
            global_att_blocks=tuple(config["global_att_blocks"]),
            window_pos_embed_bkg_spatial_size=tuple(config["window_pos_embed_bkg_spatial_size"]),
            window_spec=tuple(config["window_spec"]),
        )
        self.image_encoder = nn.Module()
        self.image_encoder.trunk = trunk
        self.image_encoder.neck = nn.Identity()
        for name in ["sam_mask_decoder", "sam_prompt_encoder", "memory_encoder", "memory_attention", "mask_downsample", "obj_ptr_tpos_proj", "obj_ptr_proj"]:
            setattr(self, name, nn.Identity())


build_sam = types.ModuleType("sam2.build_sam")
build_sam.build_sam2 = lambda *a, **k: _Sam2Stub()
sys.modules["sam2.build_sam"] = build_sam

import SAM2UNet as official  # noqa: E402

model = official.SAM2UNet()
widths = [config["embed_dim"] * 2**i for i in range(4)]
for i, width in enumerate(widths):
    setattr(model, f"rfb{i + 1}", official.RFB_modified(width, 64))
for name in ["side1", "side2", "head"]:
    setattr(model, name, nn.Conv2d(64, args.out_channels, kernel_size=1))
model.train()

# structure_loss as train.py defines it (train.py parses arguments at import, so the function is
# taken from its source)
with open(os.path.join(args.official, "train.py")) as f:
    tree = ast.parse(f.read())
loss_def = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "structure_loss")
scope = {"torch": torch, "F": torch.nn.functional}
exec(compile(ast.Module(body=[loss_def], type_ignores=[]), "train.py", "exec"), scope)
structure_loss = scope["structure_loss"]

optim = torch.optim.AdamW([{"params": model.parameters(), "initia_lr": 1e-3}], lr=1e-3, weight_decay=5e-4)
trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

generator = torch.Generator().manual_seed(3)
x = torch.rand(args.batch, 3, args.size, args.size, generator=generator) * 4 - 2
target = (torch.rand(args.batch, args.out_channels, args.size, args.size, generator=generator) > 0.7).float()

times = []
cpu = []
losses = []
for step in range(args.steps + 1):
    t = time.perf_counter()
    c = time.process_time()
    optim.zero_grad()
    pred0, pred1, pred2 = model(x)
    loss = structure_loss(pred0, target) + structure_loss(pred1, target) + structure_loss(pred2, target)
    loss.backward()
    optim.step()
    ms = (time.perf_counter() - t) * 1000
    cpu_ms = (time.process_time() - c) * 1000
    losses.append(loss.item())
    if step > 0:
        times.append(ms)
        cpu.append(cpu_ms)
    print(f"# step {step + 1}{' (warm-up)' if step == 0 else ''}: {ms / 1000:.2f} s, loss {losses[-1]:.4f}", flush=True)

ordered = sorted(times)
n = len(ordered)
median = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
print(json.dumps({
    "torch": torch.__version__,
    "attention": SDPA,
    "threads": torch.get_num_threads(),
    "step_ms": times,
    "median_step_ms": median,
    "cpu_ms": cpu,
    "trainable": trainable,
    "losses": losses,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
