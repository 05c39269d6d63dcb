.PHONY: run test lint format

# The main job: a worker and the web app on SQLite and a local Redis, a task going through end to end.
run:
	scripts/run.sh

# The whole test suite (SQLite by default; DATABASE_URL=postgresql://... for PostgreSQL).
test:
	scripts/test.sh

lint:
	scripts/bootstrap.sh
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports  # layers and no import cycles: [tool.importlinter] in pyproject.toml

format:
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .
