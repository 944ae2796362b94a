"""Rules the tests share."""

# Two `entities` rules: names in any text field, places in responses only.
ENTITY_RULES = """
rules:
  - id: pii.person
    version: 1
    description: a name
    category: pii
    severity: medium
    owner: privacy
    match: {type: entities, entities: [PERSON]}
  - id: pii.place
    version: 1
    description: a place
    category: pii
    severity: low
    owner: privacy
    applies_to: response
    match: {type: entities, entities: [LOCATION]}
"""
