"""Answer-aware cascades: cheap experts answer first, a learned scorer reads their answers
and decides whether to stop or to pay for a stronger one (FrugalGPT, AutoMix, and the
consistency cascades of "mixture of thought").

`features` turns the answers so far into a feature vector (the same code offline, from an
outcome table's recorded responses, and live, from completions); `policy` is the learned
cascade (weights, scorers, the accept/escalate rule) and its offline outcome on a table;
`search` chooses the chain and the knob on a validation split; `commands` is the CLI.
"""
