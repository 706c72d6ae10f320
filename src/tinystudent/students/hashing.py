"""The pQRNN token projection. It lives in the torch-free `tinystudent.inference.preprocess`,
so training, export and the light runtime run this exact code; re-exported here."""

from __future__ import annotations

from tinystudent.inference.preprocess import TOKEN_RE, HashProjection, tokenize

__all__ = ["TOKEN_RE", "HashProjection", "tokenize"]
