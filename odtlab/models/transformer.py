"""A tiny pre-norm Transformer encoder for sequence classification.

Attention is written out op by op in :class:`Attention` (no
``nn.MultiheadAttention``, no fused ``scaled_dot_product_attention``) so that
the course's memory accounting can see exactly which tensors each operation
keeps for backward, and so that LoRA can wrap its ``nn.Linear`` layers.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from odtlab.models._checks import check_int, check_positive_float, check_probability
from odtlab.models.initialization import build_on_device

__all__ = ["Attention", "TransformerBlock", "TinyTransformer", "tiny_transformer"]


def _dropout(p: float) -> nn.Module:
    """``nn.Dropout(p)``, or ``nn.Identity()`` when ``p == 0`` so nothing is saved for backward."""
    return nn.Dropout(p) if p > 0 else nn.Identity()


class Attention(nn.Module):
    """Multi-head self-attention, one explicit op at a time.

    For ``x`` of shape ``(B, T, dim)``, with ``H = heads`` and ``D = dim // heads``::

        q, k, v = q_proj(x), k_proj(x), v_proj(x)        # (B, T, dim) each
        q, k, v -> (B, H, T, D)                           # split into heads
        scores  = q @ k.transpose(-2, -1) * D ** -0.5     # (B, H, T, T)
        weights = softmax(scores, dim=-1)                 # rows sum to 1
        out     = dropout(weights) @ v                    # (B, H, T, D)
        out     -> (B, T, dim), then out_proj             # merge heads

    Parameters
    ----------
    dim : int
        Embedding size; must be divisible by ``heads``.
    heads : int
        Number of attention heads.
    dropout : float
        Dropout on the attention weights (0: no dropout layer).
    bias : bool
        Whether the four ``nn.Linear`` layers have a bias.

    Attributes
    ----------
    q_proj, k_proj, v_proj, out_proj : nn.Linear
        ``dim -> dim`` projections; LoRA usually adapts ``q_proj`` and ``v_proj``.
    scale : float
        ``1 / sqrt(dim // heads)``.

    Examples
    --------
    >>> Attention(dim=16, heads=4)(torch.zeros(2, 5, 16)).shape
    torch.Size([2, 5, 16])
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        check_int("dim", dim)
        check_int("heads", heads)
        if dim % heads != 0:
            raise ValueError(
                f"heads must divide dim, got heads={heads!r} and dim={dim!r}; "
                f"allowed heads for dim={dim}: {[h for h in range(1, dim + 1) if dim % h == 0]}"
            )
        self.dim = dim
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.q_proj = nn.Linear(dim, dim, bias=bias)
        self.k_proj = nn.Linear(dim, dim, bias=bias)
        self.v_proj = nn.Linear(dim, dim, bias=bias)
        self.attn_dropout = _dropout(check_probability("dropout", dropout))
        self.out_proj = nn.Linear(dim, dim, bias=bias)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        return x.view(batch, tokens, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, T, dim)`` to ``(B, T, dim)``."""
        batch, tokens, _ = x.shape
        q = self._split_heads(self.q_proj(x))
        k = self._split_heads(self.k_proj(x))
        v = self._split_heads(self.v_proj(x))
        scores = q @ k.transpose(-2, -1) * self.scale
        weights = torch.softmax(scores, dim=-1)
        out = self.attn_dropout(weights) @ v
        out = out.transpose(1, 2).reshape(batch, tokens, self.dim)
        return self.out_proj(out)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, heads={self.heads}, head_dim={self.head_dim}"


class TransformerBlock(nn.Module):
    """One pre-norm Transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``.

    Attributes
    ----------
    norm1, norm2 : nn.LayerNorm
    attn : Attention
    mlp : nn.Sequential
        Children ``fc1`` (``dim -> hidden``), ``act`` (GELU), ``fc2``
        (``hidden -> dim``) and ``drop`` (dropout or identity).
    drop : nn.Dropout or nn.Identity
        Dropout on the attention branch before the residual add.
    """

    def __init__(self, dim: int, heads: int, mlp_hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout=dropout)
        self.drop = _dropout(dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            OrderedDict(
                fc1=nn.Linear(dim, mlp_hidden),
                act=nn.GELU(),
                fc2=nn.Linear(mlp_hidden, dim),
                drop=_dropout(dropout),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, T, dim)`` to ``(B, T, dim)``."""
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.mlp(self.norm2(x))


class TinyTransformer(nn.Module):
    """A tiny Transformer classifier; build it with :func:`tiny_transformer`.

    Attributes
    ----------
    token_embed : nn.Embedding
        ``vocab_size x dim`` token embeddings.
    pos_embed : nn.Embedding
        ``seq_len x dim`` learned position embeddings.
    blocks : nn.Sequential
        ``depth`` :class:`TransformerBlock` modules.
    norm : nn.LayerNorm
        Final LayerNorm.
    classifier : nn.Linear
        ``dim -> num_classes``, applied to the mean over tokens.
    """

    def __init__(
        self,
        vocab_size: int,
        seq_len: int,
        dim: int,
        depth: int,
        heads: int,
        mlp_hidden: int,
        num_classes: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.seq_len = seq_len
        self.token_embed = nn.Embedding(vocab_size, dim)
        self.pos_embed = nn.Embedding(seq_len, dim)
        self.drop = _dropout(dropout)
        self.blocks = nn.Sequential(
            *(TransformerBlock(dim, heads, mlp_hidden, dropout) for _ in range(depth))
        )
        self.norm = nn.LayerNorm(dim)
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Map token ids ``(B, T)`` with ``T <= seq_len`` to logits ``(B, num_classes)``."""
        if tokens.dim() != 2 or tokens.shape[1] > self.seq_len:
            raise ValueError(
                f"tokens must have shape (batch, T) with T <= seq_len={self.seq_len}, "
                f"got shape {tuple(tokens.shape)}"
            )
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.drop(self.token_embed(tokens) + self.pos_embed(positions))
        x = self.norm(self.blocks(x))
        return self.classifier(x.mean(dim=1))


def tiny_transformer(
    vocab_size: int = 64,
    seq_len: int = 32,
    dim: int = 64,
    depth: int = 2,
    heads: int = 4,
    mlp_ratio: float = 2,
    num_classes: int = 10,
    *,
    dropout: float = 0.0,
    device: torch.device | str | None = None,
    seed: int | None = 0,
) -> TinyTransformer:
    """Build a tiny pre-norm Transformer that classifies token sequences.

    Token embedding plus learned position embedding, ``depth`` blocks of
    (LayerNorm, :class:`Attention`, residual add, LayerNorm, MLP
    Linear-GELU-Linear, residual add), a final LayerNorm, the mean over
    tokens and a Linear classifier. Linear weights are drawn from
    normal(0, 0.02) with zero bias, embeddings from normal(0, 0.02), as in
    GPT-2.

    Parameters
    ----------
    vocab_size : int
        Number of distinct token ids; inputs must lie in ``[0, vocab_size)``.
    seq_len : int
        Longest sequence the position embedding covers.
    dim : int
        Embedding size.
    depth : int
        Number of Transformer blocks.
    heads : int
        Attention heads; must divide ``dim``.
    mlp_ratio : float
        MLP hidden size is ``int(dim * mlp_ratio)``.
    num_classes : int
        Number of output logits.
    dropout : float
        Dropout after the embeddings, on attention weights and on both
        residual branches (0: no dropout layers at all).
    device : torch.device, str or None
        Where to build the weights; ``"meta"`` allocates nothing.
    seed : int or None
        Seed of the weight initialisation (``None``: torch's global RNG).

    Returns
    -------
    TinyTransformer
        Maps a LongTensor ``(B, T)``, ``T <= seq_len``, to ``(B, num_classes)``.

    Examples
    --------
    >>> model = tiny_transformer()
    >>> model(torch.zeros(2, 32, dtype=torch.long)).shape
    torch.Size([2, 10])
    """
    vocab_size = check_int("vocab_size", vocab_size)
    seq_len = check_int("seq_len", seq_len)
    dim = check_int("dim", dim)
    depth = check_int("depth", depth)
    heads = check_int("heads", heads)
    num_classes = check_int("num_classes", num_classes)
    dropout = check_probability("dropout", dropout)
    mlp_hidden = int(dim * check_positive_float("mlp_ratio", mlp_ratio))
    if mlp_hidden < 1:
        raise ValueError(
            f"mlp_ratio must make int(dim * mlp_ratio) >= 1, got mlp_ratio={mlp_ratio!r}"
        )
    if dim % heads != 0:
        divisors = [h for h in range(1, dim + 1) if dim % h == 0]
        raise ValueError(
            f"heads must divide dim, got heads={heads!r} and dim={dim!r}; "
            f"allowed heads for dim={dim}: {divisors}"
        )
    return build_on_device(
        lambda: TinyTransformer(
            vocab_size, seq_len, dim, depth, heads, mlp_hidden, num_classes, dropout
        ),
        device=device,
        seed=seed,
        linear_std=0.02,
    )
