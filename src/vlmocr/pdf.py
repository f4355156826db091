"""PDF pages as extraction inputs, rendered at the model's pixel budget.

A page is named the way PDF viewers open one (RFC 8118, "PDF open parameters"):
``invoice.pdf#page=2``, 1-based. That name is the page's identity in predictions.jsonl and the CSV,
so a rerun resumes page by page like it does image by image.

Rendering uses PDFium (`pypdfium2`). A page gets the size the resolution contract gives a scan of it at
`SCAN_DPI` unless told otherwise (the `smart_resize` arithmetic images go through): it is drawn at the
scale that just covers that size, then resized to it exactly. So vector text is drawn sharp at the model's resolution, and
no page is drawn at full scan size only to be shrunk.
PDFium may not be called from two threads at once, so rendering holds one lock per process. The last PDF
opened stays open for its next page while the file is unchanged (same inode, size and modification time), so
the pages of a long PDF do not each parse it again.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import math
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmocr._deps import require
from vlmocr.errors import ImageError
from vlmocr.images import DEFAULT_MAX_IMAGE_PIXELS, Resolution, smart_resize

if TYPE_CHECKING:
    from PIL.Image import Image

PDF_SUFFIX = ".pdf"
_PAGE_REF = re.compile(r"^(?P<pdf>.+\.pdf)#page=(?P<page>[0-9]+)$", re.IGNORECASE)
_LOCK = threading.Lock()
#: Under _LOCK: ((pid, path, inode, size, mtime), document) of the last PDF opened, or None.
_LAST: tuple[tuple[Any, ...], Any] | None = None
#: By default a page gets the size a scan of it at this resolution would get (a letter page: 2550x3300
#: px, which the default contract shrinks to its 1,003,520-pixel budget, 868x1120). A model trained at
#: one scale (the built-in model reads 768 px pages) wants the dpi that gives its pages that size.
SCAN_DPI = 300.0


@functools.cache
def _pdfium() -> Any:
    module = require("pypdfium2", extra="pdf", purpose="reading PDF files", package="pypdfium2")
    # Registered after pypdfium2's own exit hook (its import registers it), so it runs first: the kept
    # document is closed before PDFium shuts down, which would warn of it as still open.
    atexit.register(_drop_kept)
    return module


def page_ref(pdf: Path, page: int) -> Path:
    """The input name of a PDF's page (1-based): ``doc.pdf#page=3``."""
    return Path(f"{pdf}#page={page}")


def parse_page_ref(path: str | Path) -> tuple[Path, int] | None:
    """(the PDF, its 1-based page) for a page name, else None."""
    match = _PAGE_REF.match(str(path))
    if match is None or int(match["page"]) < 1:
        return None
    return Path(match["pdf"]), int(match["page"])


def is_pdf(path: str | Path) -> bool:
    return str(path).lower().endswith(PDF_SUFFIX)


def _open(pdf: Path) -> Any:
    pdfium = _pdfium()
    if not pdf.is_file():
        raise ImageError(f"{pdf}: file not found")
    try:
        return pdfium.PdfDocument(str(pdf))
    except pdfium.PdfiumError as exc:
        reason = "encrypted (a password is needed)" if "password" in str(exc).lower() else f"not a readable PDF ({exc})"
        raise ImageError(f"{pdf}: {reason}") from exc


def _document(pdf: Path) -> Any:
    """`pdf` open, reusing the last document opened while its file is unchanged; call under _LOCK.

    The document stays open for the next call (the caller does not close it). The key holds the process
    id, so a forked child opens its own instead of sharing its parent's file position.
    """
    global _LAST
    try:
        stat = pdf.stat()
    except OSError:
        raise ImageError(f"{pdf}: file not found") from None
    key = (os.getpid(), str(pdf.absolute()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if _LAST is not None and _LAST[0] == key:
        return _LAST[1]
    document = _open(pdf)
    _drop_kept()
    _LAST = (key, document)
    return document


def _drop_kept() -> None:
    """Close the kept document (this process's; a forked child's copy is only dropped)."""
    global _LAST
    if _LAST is not None and _LAST[0][0] == os.getpid():
        _LAST[1].close()
    _LAST = None


def count_pages(pdf: Path) -> int:
    """Number of pages; ImageError for a file PDFium cannot open."""
    with _LOCK:
        return len(_document(pdf))


def render_page(
    pdf: Path, page: int, resolution: Resolution, *, dpi: float = SCAN_DPI,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> Image:
    """Page `page` (1-based) of `pdf` as an RGB image of exactly the model size of a `dpi` scan of it."""
    from PIL import Image as PILImage

    if not dpi > 0:
        raise ImageError(f"the PDF resolution must be positive, got {dpi} dpi")
    name = page_ref(pdf, page)
    with _LOCK:
        document = _document(pdf)
        if not 1 <= page <= len(document):
            raise ImageError(f"{pdf}: no page {page} (it has {len(document)})")
        try:
            with contextlib.closing(document[page - 1]) as handle:
                width_pt, height_pt = handle.get_size()  # after the page's /Rotate
                if width_pt <= 0 or height_pt <= 0:
                    raise ImageError(f"{name}: the page has no area ({width_pt}x{height_pt} pt)")
                # The model size of a scan of the page at `dpi`, resized like any image.
                nominal = dpi / 72
                height, width = smart_resize(max(1, round(height_pt * nominal)), max(1, round(width_pt * nominal)),
                                             resolution)
                scale = max(width / width_pt, height / height_pt)
                if math.ceil(width_pt * scale) * math.ceil(height_pt * scale) > max_image_pixels:
                    raise ImageError(f"{name}: rendering needs more than {max_image_pixels} pixels")
                with contextlib.closing(handle.render(scale=scale)) as bitmap:
                    image = bitmap.to_pil().convert("RGB")
        except _pdfium().PdfiumError as exc:
            raise ImageError(f"{name}: cannot render ({exc})") from exc
    if image.size != (width, height):
        image = image.resize((width, height), PILImage.Resampling.BICUBIC)
    return image
