"""The built-in synthetic demo corpus: movies and TV shows with content-exclusive artifacts, scenes and
synchronized audio-visual events, broken titles, and UCF101 / HMDB51 / ESC-50 stand-ins, written as
real media files, deterministic from a seed.  The user's guide is ``docs/demo_corpus.md``.

``plan_demo_corpus(**sizes) -> dict`` is the manifest alone (every decision, no files);
``generate_demo_corpus(out_dir, **sizes) -> DemoCorpus`` plans, renders and writes the sidecars.

Modules, in import order: ``shapes`` and ``synthesis`` (drawing and sound primitives), ``events``
(the event vocabulary, :class:`AVEventClass`), ``pictures`` and ``sounds`` (a title's or a clip's
frames and sound track), ``plan`` (the manifest and the stand-ins' sizes), ``encoding`` (the media
writer), ``render`` (one file), ``layouts`` (the sidecars), ``generate`` (the whole corpus).
"""
from avplug.data.demo.events import AVEventClass
from avplug.data.demo.generate import DemoCorpus, generate_demo_corpus
from avplug.data.demo.plan import plan_demo_corpus

__all__ = ["AVEventClass", "DemoCorpus", "generate_demo_corpus", "plan_demo_corpus"]
