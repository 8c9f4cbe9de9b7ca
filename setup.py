"""Ship the embedded domain in the wheel: ``data/`` (models, prompt sets) and ``suites/`` (with their baselines) are
copied to ``lcm_bench/_embedded/`` at build time, where ``lcm_bench.core.paths.embedded_root`` finds them; a checkout
(editable install) reads them in place. Everything else is declared in pyproject.toml."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

EMBEDDED = {
    "data": ("models/**/*", "prompts/*.txt", "prompts/partiprompts/*"),
    "suites": ("*.yaml", "baselines/*.json"),
}


class BuildWithEmbedded(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        for folder, patterns in EMBEDDED.items():
            for pattern in patterns:
                for source in sorted(Path(folder).glob(pattern)):
                    if source.is_file() and not any(part.startswith(".") for part in source.parts):
                        target = Path(self.build_lib, "lcm_bench", "_embedded", source)
                        self.mkpath(str(target.parent))
                        self.copy_file(str(source), str(target))


setup(cmdclass={"build_py": BuildWithEmbedded})
