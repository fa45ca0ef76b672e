"""Devices: parsing ``cpu`` / ``cuda`` / ``cuda:N`` and saying why one cannot be used."""

from __future__ import annotations

import torch

from ..errors import SelectionError

DEFAULT_DEVICES = ("cpu", "cuda")


def parse_device(text: str) -> torch.device:
    """A torch.device for ``cpu``, ``cuda`` or ``cuda:N``; anything else is a usage error."""
    try:
        device = torch.device(text.strip())
    except (RuntimeError, ValueError) as exc:
        raise SelectionError(f"unknown device {text!r}: use cpu, cuda or cuda:N") from exc
    if device.type not in ("cpu", "cuda"):
        raise SelectionError(f"unsupported device {text!r}: mfbench runs on cpu, cuda or cuda:N")
    return device


def unavailable_reason(device: torch.device) -> str | None:
    """Why ``device`` cannot run anything on this machine, or None when it can."""
    if device.type == "cpu":
        return None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            if torch.version.cuda is None:
                return f"CUDA is not available: this torch build ({torch.__version__}) has no CUDA support"
            return "CUDA is not available: no CUDA device was found"
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            return f"CUDA is not available as {device}: this machine has {count} CUDA device(s)"
        return None
    return f"unsupported device type {device.type!r}"
