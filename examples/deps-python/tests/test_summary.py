"""``python -m unittest discover -s tests``: needs only the standard library and the pinned wheels."""

import unittest

from airlock_deps_python import load_catalogue, render, summarise


class SummaryTest(unittest.TestCase):
    def setUp(self):
        self.catalogue = load_catalogue()
        self.rows = summarise(self.catalogue)

    def test_newest_first(self):
        self.assertEqual([r["name"] for r in self.rows], ["packaging", "idna", "tomli", "six", "airlock-deps-python"])

    def test_versions(self):
        by_name = {r["name"]: r for r in self.rows}
        self.assertTrue(by_name["airlock-deps-python"]["prerelease"])
        self.assertEqual([r["name"] for r in self.rows if not r["supported"]], ["airlock-deps-python"])

    def test_punycode_hosts(self):
        hosts = {r["name"]: r["host"] for r in self.rows}
        self.assertEqual(hosts["idna"], "xn--bcher-kva.example")
        self.assertEqual(hosts["airlock-deps-python"], "xn--strae-oqa.example")

    def test_render(self):
        text = render(self.catalogue["title"], self.rows)
        self.assertTrue(text.startswith("airlock example catalogue: 5 packages\n"))


if __name__ == "__main__":
    unittest.main()
