"""Clicks, their encodings, their simulation for training and the evaluation protocol's rules."""

from iseg.interaction.clicks import Click, clicks_to_points, points_to_clicks
from iseg.interaction.encoding import ClickEncoder, encode_clicks

__all__ = ["Click", "ClickEncoder", "clicks_to_points", "encode_clicks", "points_to_clicks"]
