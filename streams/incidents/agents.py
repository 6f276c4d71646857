"""Placeholder until the incidents stage is wired."""

from streams.stage import StageContext


def register(ctx: StageContext) -> None:
    pass
