"""The operator's view of intents across the pipeline: which entered in a time window and how
each ended (`listing`, `tradeops intent list`), and every event as it is published (`live`,
`tradeops intent watch`). One intent's whole chain is `ops.audit.trail`'s (`intent show`)."""
