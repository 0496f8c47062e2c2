"""Network definitions: AsymmNet (and MobileNetV3 at asymmrate 0), MobileNetV2
with asymmetrical bottlenecks, shared layers and feature extraction."""
