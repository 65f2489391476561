"""joe's ML core: training data, base models and the fine-tuning loop. Imports no Django."""
