"""Prompts (click, scribble, box), their encodings, robots, training-time simulation and metrics."""

from iseg.interaction.clicks import clicks_to_points, points_to_clicks
from iseg.interaction.encoders import PromptEncoder, make_encoder, register_encoder
from iseg.interaction.encoding import ClickEncoder, encode_clicks
from iseg.interaction.forte_clicks import ForteClickEncoder  # registers "forte_click_pixels"
from iseg.interaction.forte_robot import ForteClickRobot
from iseg.interaction.prompts import Box, Click, InsideOutside, Prompt, Scribble
from iseg.interaction.robots import ClickRobot, Robot
from iseg.interaction.scribble_encoding import ScribbleMapsEncoder

__all__ = [
    "Box",
    "Click",
    "ClickEncoder",
    "ClickRobot",
    "InsideOutside",
    "ForteClickEncoder",
    "ForteClickRobot",
    "Prompt",
    "PromptEncoder",
    "Robot",
    "Scribble",
    "ScribbleMapsEncoder",
    "clicks_to_points",
    "encode_clicks",
    "make_encoder",
    "points_to_clicks",
    "register_encoder",
]
