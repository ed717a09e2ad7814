"""The models and the model-kind registry: the paper's 3D CNN and its recurrent variant
(``slice_models``), the whole-trailer model (``tsn``), how a trained model scores films
(``scoring``), ``model_info.json`` (``info``), and ``kinds``: one object per kind, the
only place that knows what differs between kinds.
"""
