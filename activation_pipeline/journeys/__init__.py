"""Journeys: multi-step flows evaluated as of a time on the compute engine.

`schema` holds the journey state tables (positions, transitions, entry matches, versions, run figures),
`conditions` evaluates journey conditions for people at their own moments, `evaluate` moves people through
the steps, and `delivery` tells the sync layer who reached each send step. A send step is delivered as a
connection whose members are the people who reached the step (see `config.journeys.JourneyDestination`).
"""
