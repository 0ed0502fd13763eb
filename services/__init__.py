"""Use cases: one function per thing a person does to Flowline (publish, drain or stop a flow,
start or stop a journey, erase a person, change the workspace's zone, record a delivery report).

HTTP routes (api/routes/), the CLI and the console all call these. They take plain arguments
(the store, the Temporal client or the launcher, the workspace's id), raise the domain errors of
services/errors.py, and know nothing of HTTP.
"""
