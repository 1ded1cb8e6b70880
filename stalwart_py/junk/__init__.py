"""A junk filter that learns, per account, like mox's: a Bayesian classifier.

* ``tokens``: a message as the features counted (words of its text and of its address and
  subject fields, the sender authentication results of our ``Authentication-Results``, the
  From domain and link hosts).
* ``bayes``: Robinson's token probabilities combined by Fisher's method into a score.
* ``headers``: ``X-Spam-Status``/``X-Spam-Score``, the removal of forged ones, and the
  RFC 5235 values Sieve's ``spamtest``/``spamtestplus`` read from them.
* ``filter``: ``JunkFilter``, classification at delivery and training from IMAP moves and
  ``$Junk``/``$NotJunk`` (a worker owned by the server).
* ``[spam.classifier]`` is ``stalwart_py.config.junk.ClassifierSettings``.

The counts live in the store (``Store.junk_counts``, ``junk_train``, ``junk_trained_as``;
``store/sqlite_junk.py``), bounded per account. Modules are imported directly (this package
imports nothing, so the Sieve interpreter can read ``headers`` without a cycle).
"""
