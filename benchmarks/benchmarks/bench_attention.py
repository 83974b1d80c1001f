"""neuro-attention: the fused ``modulated_attention`` op and every mechanism layer.

Op backends: ``reference`` (materialized spec), ``blockwise`` (CPU path), ``sdpa`` (plain SDPA,
features off only: the peer), ``triton`` (CUDA only), ``flex`` (FlexAttention with an equivalent
``score_mod``, CUDA only: the GPU peer). Features: ``off`` (plain causal), ``ncn`` (β and per-token
gain), ``all`` (β, key bias, pair gate W=512, per-token gain, entropy). Unsupported combinations
raise ``NotImplementedError`` in ``setup``. CPU runs fp32 batch 1, H=8, D=64; CUDA runs bf16,
H=16, D=128 (the GPU target's shape).
"""

try:
    import torch

    from neuro_attention import (
        AdaptiveHeadTemperature,
        ConfidenceWeightedVoting,
        CorticalColumnAttention,
        EntropyBasedVoting,
        HabituatingAttention,
        LateralInhibition,
        MemoryTemperature,
        NeuroAttention,
        NeuroAttentionConfig,
        NeuromodulatedAttention,
        NoveltyDetector,
        PopulationCodedAttention,
        ProsodyQueryGate,
        SynapticModulationMatrix,
        SynapticScaling,
        modulated_attention,
    )
except ImportError:  # an old commit without the package: asv skips the suite
    torch = None


def _inputs(t, features, device, dtype, h, d):
    g = torch.Generator().manual_seed(0)

    def r(*s):
        return torch.randn(*s, generator=g).to(device, dtype).requires_grad_(True)

    q, k, v = r(1, t, h, d), r(1, t, h, d), r(1, t, h, d)
    kw = {}
    if features in ("ncn", "all"):
        kw["query_scale"] = (
            (torch.rand(1, t, h, generator=g) + 0.5).to(device, dtype).requires_grad_(True)
        )
        kw["head_gain"] = r(1, t, h)
    if features == "all":
        kw["key_bias"] = r(1, t, h)
        kw["pair_gate"] = (r(1, t, h), r(1, t, h), 512)
        kw["return_entropy"] = True
    return q, k, v, kw


class ModulatedAttention:
    params = (
        ["reference", "blockwise", "sdpa", "triton", "flex"],
        [512, 2048, 4096],
        ["off", "ncn", "all"],
    )
    param_names = ["backend", "T", "features"]
    timeout = 300

    def setup(self, backend, t, features):
        if torch is None:
            raise NotImplementedError("neuro_attention not importable")
        cuda = torch.cuda.is_available()
        if backend in ("triton", "flex") and not cuda:
            raise NotImplementedError(f"{backend} needs CUDA")
        if backend == "sdpa" and features == "all":
            raise NotImplementedError("sdpa cannot compute key bias, pair gate or entropy")
        if backend == "reference" and t > 2048:
            raise NotImplementedError("materialized [B, H, T, T] too large")
        device, dtype, h, d = (
            ("cuda", torch.bfloat16, 16, 128) if cuda else ("cpu", torch.float32, 8, 64)
        )
        if backend == "blockwise" and cuda:
            raise NotImplementedError("blockwise is the CPU path")
        q, k, v, kw = _inputs(t, features, device, dtype, h, d)
        if backend == "flex":
            self.fn = _flex(q, k, v, kw)
        else:

            def fn():
                out = modulated_attention(q, k, v, backend=backend, **kw)
                return out if isinstance(out, tuple) else (out,)

            self.fn = fn
        self.sync = torch.cuda.synchronize if cuda else (lambda: None)
        self.fn()
        self.sync()

    def time_forward(self, backend, t, features):
        with torch.no_grad():
            self.fn()
        self.sync()

    def time_forward_backward(self, backend, t, features):
        sum(o.float().sum() for o in self.fn()).backward()
        self.sync()

    def peakmem_forward_backward(self, backend, t, features):
        sum(o.float().sum() for o in self.fn()).backward()


def _flex(q, k, v, kw):
    """FlexAttention with a score_mod equivalent to the features (no entropy output)."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    t = q.shape[1]
    qs, kb = kw.get("query_scale"), kw.get("key_bias")
    gate = kw.get("pair_gate")
    scale = q.shape[-1] ** -0.5

    def score_mod(score, b, h, i, j):
        if qs is not None:
            score = score * qs[b, i, h]
        if kb is not None:
            score = score + kb[b, j, h]
        if gate is not None:
            a, bb, w = gate
            score = score + torch.where(
                (i - j) < w, torch.nn.functional.logsigmoid(a[b, i, h] + bb[b, j, h]), 0.0
            )
        return score

    mask = create_block_mask(lambda b, h, i, j: j <= i, None, None, t, t, device=q.device)
    flex = torch.compile(flex_attention)
    gain = kw.get("head_gain")

    def fn():
        out = flex(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            score_mod=score_mod,
            block_mask=mask,
            scale=scale,
        ).transpose(1, 2)
        return (out * gain[..., None] if gain is not None else out,)

    return fn


class Mechanisms:
    """Forward + backward of each mechanism layer at B=2, T, d_model=256, H=8 (CPU or CUDA)."""

    params = (
        [
            "SynapticScaling",
            "NeuromodulatedAttention",
            "SynapticModulationMatrix",
            "CorticalColumnAttention",
            "LateralInhibition",
            "HabituatingAttention",
            "NoveltyDetector",
            "PopulationCodedAttention",
            "ConfidenceWeightedVoting",
            "EntropyBasedVoting",
            "AdaptiveHeadTemperature",
            "ProsodyQueryGate",
            "MemoryTemperature",
            "NeuroAttention[plain]",
            "NeuroAttention[all]",
        ],
        [256, 1024],
    )
    param_names = ["layer", "T"]
    timeout = 300

    def setup(self, layer, t):
        if torch is None:
            raise NotImplementedError("neuro_attention not importable")
        dev = "cuda" if torch.cuda.is_available() else "cpu"
        torch.manual_seed(0)
        b, h, d, dm = 2, 8, 32, 256

        def r(*s):
            return torch.randn(*s, device=dev, requires_grad=True)

        heads, x, ent = r(b, t, h, d), r(b, t, dm), torch.rand(b, t, h, device=dev)
        q, k, v = r(b, t, h, d), r(b, t, h, d), r(b, t, h, d)
        if layer == "SynapticScaling":
            m, call = SynapticScaling(h), lambda m: m(heads)
        elif layer == "NeuromodulatedAttention":
            m, call = NeuromodulatedAttention(dm, h), lambda m: m(x)
        elif layer == "SynapticModulationMatrix":
            m = SynapticModulationMatrix(d)
            call = lambda m: modulated_attention(q, k, v, pair_gate=m(q, k))
        elif layer == "CorticalColumnAttention":
            if t > 256:
                raise NotImplementedError("its specialization diagnostic materializes [B, H, T, T]")
            m, call = CorticalColumnAttention(dm, 4, 2, d), lambda m: m(x)[0]
        elif layer == "LateralInhibition":
            m, call = LateralInhibition(4), lambda m: m(heads.reshape(b, t, 4, 2 * d))
        elif layer == "HabituatingAttention":
            m, call = HabituatingAttention(), lambda m: m(q, k, v)[0]
        elif layer == "NoveltyDetector":
            m, call = NoveltyDetector(), lambda m: m(ent.requires_grad_(True))[0]
        elif layer == "PopulationCodedAttention":
            m, call = PopulationCodedAttention(h, d), lambda m: m(heads)[0]
        elif layer == "ConfidenceWeightedVoting":
            m, call = ConfidenceWeightedVoting(h, d), lambda m: m(heads)[0]
        elif layer == "EntropyBasedVoting":
            m, call = EntropyBasedVoting(), lambda m: m(heads, ent)[0]
        elif layer == "AdaptiveHeadTemperature":
            m, call = AdaptiveHeadTemperature(), lambda m: m(ent.requires_grad_(True))
        elif layer == "ProsodyQueryGate":
            m = ProsodyQueryGate(h)
            call = lambda m: m(r(b, t, 4), r(b, t), r(b, t))
        elif layer == "MemoryTemperature":
            m, call = MemoryTemperature(dm, h), lambda m: m(x)
        elif layer == "NeuroAttention[plain]":
            m, call = (
                NeuroAttention(NeuroAttentionConfig(d_model=dm, num_heads=h)),
                lambda m: m(x).out,
            )
        else:
            cfg = NeuroAttentionConfig(
                d_model=dm,
                num_heads=h,
                num_kv_heads=4,
                synaptic_scaling=True,
                neuromodulated_gates=True,
                pair_gate_window=128,
                habituation=True,
                memory_temperature=True,
                lateral_inhibition=True,
                population_tuning=True,
                voting="entropy",
            )
            m, call = NeuroAttention(cfg), lambda m: m(x).out
        self.m = m.to(dev)
        self.call = call
        self.sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)

    def time_forward_backward(self, layer, t):
        self.call(self.m).float().sum().backward()
        self.sync()

    def peakmem_forward_backward(self, layer, t):
        self.call(self.m).float().sum().backward()
