"""Custom elements: integrations configured once and used by the ``custom`` step of many flows
(docs/elements.md).

- ``definition``: a declarative element (inputs, HTTP request template, saves, outcomes);
- ``params``: a step's params against an element's inputs (at save time and at run time);
- ``plugins``: elements in code, registered by Python packages under the entry-point group
  ``flowline.elements``, and the HTTP helper they use.

The workflow never imports this package: the step's activity (activities/custom_elements.py)
reads the definition from the store.
"""
