"""vlmocr: turn document images into JSON with vision-language models.

Fine-tune, export, serve and evaluate Qwen2.5-VL models for structured extraction
from one CLI and library. Importing the package is cheap: no torch, no network.
"""

__version__ = "0.1.0"
