"""Journeys as documents: `store` (drafts, publishing, versions), `versions` (parsed published versions,
cached), `diff`, `diagram` (layout and SVG), `editing` (the designer's edits, pure) with `forms` and
`settings`, and `kinds` (the designer's half of each node type and condition)."""
