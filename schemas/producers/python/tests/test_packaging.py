"""pyproject.toml and requirements.txt pin the same versions."""

import tomllib
import unittest
from pathlib import Path

KIT = Path(__file__).resolve().parents[1]


class Pins(unittest.TestCase):
    def test_pyproject_dependencies_are_pinned_as_in_requirements(self):
        pins = {}
        for line in (KIT / "requirements.txt").read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                name, version = line.split("==")
                pins[name.lower()] = version
        project = tomllib.loads((KIT / "pyproject.toml").read_text())["project"]
        for requirement in project["dependencies"]:
            name, version = requirement.split("==")
            with self.subTest(name=name):
                self.assertEqual(pins.get(name.lower()), version)


if __name__ == "__main__":
    unittest.main()
