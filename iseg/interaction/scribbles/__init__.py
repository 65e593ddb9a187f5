"""S2M's scribbles: training-time simulation (previous mask, robot and random strokes), the sampler
and the evaluation robot."""
