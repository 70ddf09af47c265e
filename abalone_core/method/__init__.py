"""The method: the losses, the memory queue and momentum encoder, the encoders and heads, and
what each objective is.

Modules
-------
``losses``      BCE, focal, asymmetric, distribution-balanced; L_Base, L_BQueue, L_BQProto, L_MSC and
                MulSupCon, computed over label masks
``memory``      the labelled FIFO queue and the momentum key encoder
``model``       backbones, pooling, projection head, prototypes, ``ContrastiveModel``, ``TextClassifier``
``objectives``  what each objective is (:data:`objectives.TABLE`): every other module asks it
"""
