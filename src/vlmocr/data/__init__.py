"""The data stage: read and validate Roboflow datasets, convert them, synthesize new ones."""
