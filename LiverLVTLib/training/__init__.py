"""Training the network: ``train.train(TrainOptions, log, progress)`` on cached cases
(``dataset``), with augmentation and on-the-fly synthesis (``augment``, ``synthesis``,
``tumor_synthesis``) and the masked loss (``losses``). Logs through callbacks, never prints."""
