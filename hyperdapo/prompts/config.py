"""The typed configuration of the prompts stage (``prompt:``): light, no numerical imports."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PromptConfig:
    """How prompts are written. ``imbalance_words_at`` is the |imbalance| above which the book is called
    bid- or ask-heavy; ``volatile_z`` the volatility z-score above which the market is called volatile."""

    style: str = "full"  # full: prose with a system prompt | compact: one short line (tiny CPU models)
    imbalance_words_at: float = 0.15
    volatile_z: float = 1.0
    n_few_shot: int = 0  # example (state, answer) turns from the training split, prepended to the chat
    band_bps: float = 200.0  # answers further than this from mid are invalid (the decoder's band)
    prefill_side: bool = True  # start the assistant turn with "<SIDE> LIMIT": the task fixes the side and the
    # order type, the policy chooses the price (a tiny model cannot otherwise learn to copy the side in minutes)
    book_depth: bool = False  # compact style: also show the depth-ratio and book-pressure z-scores, side-relative
    # (render.BOOK_DEPTH_Z); on real BTC (experiment=standx_btc) the book-depth features are the ones whose
    # validation reward models beat the best fixed offset, and the one-line prompt otherwise hides them

    def __post_init__(self) -> None:
        if not 0 <= self.imbalance_words_at < 1:
            raise ValueError(f"prompt.imbalance_words_at={self.imbalance_words_at}: must be in [0, 1)")
        if self.n_few_shot < 0:
            raise ValueError(f"prompt.n_few_shot={self.n_few_shot}: must be >= 0")
        if self.style not in ("full", "compact"):
            raise ValueError(f"prompt.style={self.style!r}: use full or compact")
        if not self.band_bps > 0:
            raise ValueError(f"prompt.band_bps={self.band_bps}: must be > 0")
