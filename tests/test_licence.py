"""The licence as declared: LICENSE, pyproject.toml, and debian/copyright for what the .deb bundles.

The Debian package bundles the wheels of requirements.txt's `bundled:` pins; debian/copyright
must carry a stanza for each, naming the wheel's installed dist-info folder (so its name and
version), read from that wheel's own licence files. These tests tie the two files together, so
a new or upgraded bundled wheel cannot slip into the package without its licence being read.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass

from conftest import TOP

import pyimagestreamd

PRIVATE = "usr/lib/pyimagestream"


@dataclass(frozen=True)
class Pin:
    name: str
    version: str

    @property
    def dist_info(self) -> str:
        """The folder pip installs the wheel's metadata to, as debian/copyright names it."""
        # The wheel's name normalised as its dist-info folder spells it (PEP 503, then `_`).
        return f"{re.sub(r'[-_.]+', '_', self.name).lower()}-{self.version}.dist-info"


def bundled_pins(text: str) -> list[Pin]:
    """The pins that follow a `# bundled:` comment line, as debian/rules selects them."""
    pins = []
    bundled = False
    for line in text.splitlines():
        if line.startswith("#"):
            bundled = line.startswith("# bundled:")
        elif bundled and (match := re.match(r"([A-Za-z0-9._-]+)==([^\s\\;]+)", line)):
            pins.append(Pin(match.group(1), match.group(2)))
    return pins


def dep5_paragraphs(text: str) -> list[dict[str, str]]:
    """debian/copyright's paragraphs as field -> value (continuation lines joined by newlines)."""
    paragraphs: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    key = ""
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if fields:
                paragraphs.append(fields)
            fields, key = {}, ""
        elif line[0] in " \t":
            assert key, f"continuation line without a field: {line!r}"
            fields[key] += "\n" + line.strip()
        else:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return paragraphs


def licence_names(expression: str) -> set[str]:
    """The short names in a DEP-5 License expression such as `Expat and IJG or Zlib`."""
    return set(re.split(r"\s+(?:and|or)\s+", expression.splitlines()[0].strip()))


def check_copyright(requirements: str, copyright_text: str) -> list[str]:
    """What debian/copyright lacks for the bundled pins of requirements.txt (empty: nothing)."""
    paragraphs = dep5_paragraphs(copyright_text)
    files = [p for p in paragraphs if "Files" in p]
    texts = {
        p["License"].splitlines()[0]: p["License"]
        for p in paragraphs
        if "Files" not in p and "License" in p
    }
    problems = []
    covered = set()
    for pin in bundled_pins(requirements):
        pattern = f"{PRIVATE}/{pin.dist_info}/*"
        stanza = next((p for p in files if pattern in p["Files"].split()), None)
        if stanza is None:
            problems.append(f"{pin.name}=={pin.version}: no Files stanza naming {pattern}")
            continue
        covered.add(pattern)
    for stanza in files:
        where = stanza["Files"].split()[0]
        if not stanza.get("Copyright"):
            problems.append(f"{where}: the stanza has no Copyright")
        for name in licence_names(stanza.get("License", "")):
            if not name or ("\n" not in texts.get(name, "") and "\n" not in stanza["License"]):
                problems.append(f"{where}: no licence text for {name!r}")
        for pattern in stanza["Files"].split():
            if pattern.endswith(".dist-info/*") and pattern not in covered:
                problems.append(f"{pattern}: a stanza for a wheel that is not a bundled pin")
    return problems


def test_debian_copyright_has_a_stanza_for_every_bundled_pin() -> None:
    """Every bundled wheel, at its pinned version, has a copyright stanza with holders and text."""
    requirements = (TOP / "requirements.txt").read_text()
    assert len(bundled_pins(requirements)) >= 5, "requirements.txt: bundled pins not found"
    assert check_copyright(requirements, (TOP / "debian/copyright").read_text()) == []


def test_a_new_or_upgraded_bundled_pin_without_a_stanza_is_reported() -> None:
    """A bundled pin added, or one whose version changed, is named as missing from the copyright."""
    requirements = (TOP / "requirements.txt").read_text()
    copyright_text = (TOP / "debian/copyright").read_text()
    added = requirements + "# bundled: a new wheel\nNew_Wheel==1.0 \\\n    --hash=sha256:00\n"
    assert check_copyright(added, copyright_text) == [
        f"New_Wheel==1.0: no Files stanza naming {PRIVATE}/new_wheel-1.0.dist-info/*"
    ]
    upgraded = requirements.replace("\nlinuxpy==0.25.0 ", "\nlinuxpy==0.26.0 ")
    assert check_copyright(upgraded, copyright_text) == [
        f"linuxpy==0.26.0: no Files stanza naming {PRIVATE}/linuxpy-0.26.0.dist-info/*",
        f"{PRIVATE}/linuxpy-0.25.0.dist-info/*: a stanza for a wheel that is not a bundled pin",
    ]


def test_the_project_itself_is_mit_licensed() -> None:
    """LICENSE is the MIT text, pyproject.toml says `MIT` (PEP 639), debian/copyright says Expat."""
    licence = (TOP / "LICENSE").read_text()
    assert licence.startswith("MIT License\n\nCopyright (c) 2026 the pyimagestream authors\n")
    project = tomllib.loads((TOP / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    # PEP 639: a licence expression replaces the licence classifiers; tools reject both.
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]
    assert project["version"] == pyimagestreamd.__version__
    header, everything = dep5_paragraphs((TOP / "debian/copyright").read_text())[:2]
    assert header["Format"].endswith("/copyright-format/1.0/")
    assert everything == {
        "Files": "*",
        "Copyright": "2026 the pyimagestream authors",
        "License": "Expat",
    }
