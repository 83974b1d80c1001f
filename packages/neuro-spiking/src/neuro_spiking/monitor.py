"""ActivityMonitor: firing rates, population statistics, raster and rate plots (PNG).

Record spike tensors ``[T, N]`` or ``[T, B, N]`` per named population (chunks are concatenated
along time); matplotlib is imported only by the plotting methods (the ``plot`` extra).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from neuro_core.validation import check_positive, check_tensor


@dataclass(frozen=True)
class PopulationStats:
    """Summary of one population: rates in Hz over the recorded time (and batch)."""

    n_neurons: int
    duration_ms: float
    mean_rate_hz: float
    std_rate_hz: float
    fraction_active: float
    total_spikes: int


class ActivityMonitor:
    """Collects spikes per population at a fixed ``dt_ms``.

    Args:
        dt_ms: simulation step in ms (> 0).

    Spikes are kept on CPU as ``[T, B, N]`` bool (a ``[T, N]`` record gets ``B = 1``).
    """

    def __init__(self, dt_ms: float) -> None:
        check_positive("dt_ms", dt_ms)
        self.dt_ms = dt_ms
        self._chunks: dict[str, list[torch.Tensor]] = {}

    def record(self, name: str, spikes: torch.Tensor) -> None:
        """Append ``spikes [T, N]`` or ``[T, B, N]`` to population ``name``."""
        check_tensor("spikes", spikes, ndim=(2, 3))
        s = spikes.detach().to("cpu") != 0
        if s.ndim == 2:
            s = s.unsqueeze(1)
        chunks = self._chunks.setdefault(name, [])
        if chunks and chunks[0].shape[1:] != s.shape[1:]:
            raise ValueError(
                f"spikes for {name!r} must have shape [T, {tuple(chunks[0].shape[1:])}], "
                f"got {tuple(s.shape)}"
            )
        chunks.append(s)

    @property
    def populations(self) -> list[str]:
        return list(self._chunks)

    def spikes(self, name: str) -> torch.Tensor:
        """All recorded spikes of ``name``, ``[T, B, N]`` bool."""
        if name not in self._chunks:
            raise ValueError(f"name must be a recorded population {self.populations}, got {name!r}")
        return torch.cat(self._chunks[name])

    def firing_rates_hz(self, name: str) -> torch.Tensor:
        """``[N]`` mean firing rate of each neuron (over time and batch), in Hz."""
        s = self.spikes(name)
        duration_s = s.shape[0] * self.dt_ms / 1000.0
        return s.float().sum(0).mean(0) / duration_s

    def population_rate_hz(self, name: str, bin_ms: float) -> torch.Tensor:
        """Population rate in Hz in consecutive bins of ``bin_ms`` (a multiple of dt): ``[n_bins]``."""
        check_positive("bin_ms", bin_ms)
        k = round(bin_ms / self.dt_ms)
        if k < 1 or abs(k * self.dt_ms - bin_ms) > 1e-9 * max(1.0, bin_ms):
            raise ValueError(f"bin_ms={bin_ms} must be a multiple of dt_ms={self.dt_ms}")
        s = self.spikes(name).float()
        n_bins = s.shape[0] // k
        per_step = s[: n_bins * k].mean(dim=(1, 2))  # spikes per neuron per step
        return per_step.reshape(n_bins, k).mean(1) / (self.dt_ms / 1000.0)

    def stats(self) -> dict[str, PopulationStats]:
        """:class:`PopulationStats` of every recorded population."""
        out = {}
        for name in self.populations:
            s = self.spikes(name)
            rates = self.firing_rates_hz(name)
            out[name] = PopulationStats(
                n_neurons=s.shape[2],
                duration_ms=s.shape[0] * self.dt_ms,
                mean_rate_hz=float(rates.mean()),
                std_rate_hz=float(rates.std()) if rates.numel() > 1 else 0.0,
                fraction_active=float((s.sum((0, 1)) > 0).float().mean()),
                total_spikes=int(s.sum()),
            )
        return out

    def plot_raster(
        self,
        path: str | Path,
        *,
        names: list[str] | None = None,
        max_neurons: int = 200,
        batch_index: int = 0,
    ) -> Path:
        """Raster plot (one row of panels per population) saved as PNG; returns the path."""
        names = names or self.populations
        fig = _figure(figsize=(8, 2 + 1.5 * len(names)))
        axes = fig.subplots(len(names), 1, squeeze=False)
        for ax, name in zip(axes[:, 0], names):
            s = self.spikes(name)[:, batch_index, :max_neurons]
            t, n = s.nonzero(as_tuple=True)
            ax.scatter(t.numpy() * self.dt_ms, n.numpy(), s=1, c="k", marker="|")
            ax.set_ylabel(f"{name}\nneuron")
            ax.set_xlim(0, s.shape[0] * self.dt_ms)
        axes[-1, 0].set_xlabel("time (ms)")
        return _save(fig, path)

    def plot_rates(
        self, path: str | Path, *, bin_ms: float, names: list[str] | None = None
    ) -> Path:
        """Population rate (Hz) over time per population, saved as PNG; returns the path."""
        fig = _figure(figsize=(8, 3))
        ax = fig.subplots()
        for name in names or self.populations:
            r = self.population_rate_hz(name, bin_ms)
            ax.plot((torch.arange(r.numel()) + 0.5).numpy() * bin_ms, r.numpy(), label=name)
        ax.set_xlabel("time (ms)")
        ax.set_ylabel("rate (Hz)")
        ax.legend()
        return _save(fig, path)


def _figure(figsize: tuple[float, float]):  # type: ignore[no-untyped-def]
    """A bare ``matplotlib.figure.Figure``: no pyplot, so the user's backend is never switched."""
    try:
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plotting needs the optional extra: pip install 'neuro-spiking[plot]'"
        ) from e
    return Figure(figsize=figsize)


def _save(fig, path: str | Path) -> Path:  # type: ignore[no-untyped-def]
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise ValueError(f"path must end in .png, got {str(path)!r}")
    fig.tight_layout()
    # Figure.savefig renders through its own Agg canvas; nothing registers with pyplot.
    fig.savefig(p, format="png", dpi=100)
    return p


__all__ = ["ActivityMonitor", "PopulationStats"]
