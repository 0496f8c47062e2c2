"""Network definitions: AsymmNet (and MobileNetV3 at asymmrate 0), MobileNetV2
with asymmetrical bottlenecks, GhostNet, shared layers and feature extraction."""
