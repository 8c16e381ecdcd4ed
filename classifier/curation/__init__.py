"""Dataset curation: the genre taxonomy, labelled samples, training runs and model versions."""
