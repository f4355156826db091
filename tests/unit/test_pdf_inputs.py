"""PDF inputs of `vlmocr extract`: pages listed as doc.pdf#page=N, drawn at the model's size, sent, resumed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from tests.unit.test_client_fake_server import FakeOpenAI, manifest
from tests.unit.test_client_faults import run
from vlmocr.client.extract import ExtractConfig
from vlmocr.client.inputs import discover_images, load_for_model
from vlmocr.errors import ConfigError, ImageError
from vlmocr.images import Resolution, smart_resize
from vlmocr.pdf import page_ref, parse_page_ref, render_page

pytest.importorskip("pypdfium2")
LETTER_PX = (850, 1100)  # a US letter page at 100 dpi: 612 x 792 pt


def page(mark: int = 0, size: tuple[int, int] = LETTER_PX) -> Image.Image:
    """A white page, its top-right quarter black; `mark` makes pages differ."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((size[0] // 2, 0, size[0] - 1, size[1] // 2 - 1), fill="black")
    draw.text((20, size[1] - 40), f"PAGE {mark}", fill="black")
    return image


def make_pdf(path: Path, n_pages: int, dpi: float = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pages = [page(i) for i in range(n_pages)]
    pages[0].save(path, save_all=True, append_images=pages[1:], resolution=dpi)
    return path


def encrypted_pdf(path: Path) -> Path:
    """A one-page PDF locked with a user password (standard security handler, revision 2) that is not
    the empty one, so no reader opens it without the password."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
               b"<< /Filter /Standard /V 1 /R 2 /O <" + b"41" * 32 + b"> /U <" + b"42" * 32 + b"> /P -4 >>"]
    data, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(data))
        data += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(data)
    data += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    data += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    file_id = b"<00112233445566778899aabbccddeeff>"
    data += b"trailer\n<< /Size %d /Root 1 0 R /Encrypt 4 0 R /ID [%s %s] >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, file_id, file_id, xref)
    path.write_bytes(bytes(data))
    return path


def test_page_names_round_trip() -> None:
    assert parse_page_ref(page_ref(Path("/d/Scan 1.PDF"), 12)) == (Path("/d/Scan 1.PDF"), 12)
    assert parse_page_ref("/d/a.pdf#page=0") is None
    assert parse_page_ref("/d/a.pdf") is None
    assert parse_page_ref("/d/a.png#page=2") is None


def test_folders_list_every_page_in_order_and_a_named_page_alone(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    pdf = make_pdf(docs / "a.pdf", 3)
    page(9).save(docs / "b.jpg")
    (docs / "notes.txt").write_text("not an input")
    found = discover_images([docs])
    assert [p.name for p in found] == ["a.pdf#page=1", "a.pdf#page=2", "a.pdf#page=3", "b.jpg"]
    assert discover_images([pdf]) == found[:3]
    assert discover_images([f"{pdf}#page=2", pdf]) == [found[1], found[0], found[2]]  # each page once
    with pytest.raises(ConfigError, match="has 3 page"):
        discover_images([f"{pdf}#page=4"])


def test_a_page_is_drawn_at_the_model_size_of_a_scan_of_it(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "a.pdf", 1)  # 612 x 792 pt
    resolution = Resolution()
    image = render_page(pdf, 1, resolution)
    height, width = smart_resize(3300, 2550, resolution)  # a 300 dpi scan, shrunk into the contract
    assert image.size == (width, height) == (868, 1120)
    assert image.mode == "RGB"
    # The page's content lands where it is on the page: the top-right quarter black, the rest white.
    gray = image.convert("L")
    quarter = (width // 2 + 10, 10, width - 10, height // 2 - 10)
    assert max(gray.crop(quarter).getdata()) < 60
    assert min(gray.crop((10, 10, width // 2 - 10, height // 2 - 10)).getdata()) > 200
    # Fewer dots a inch: the contract's arithmetic on that scan's size.
    assert render_page(pdf, 1, resolution, dpi=72).size == (616, 784)
    small = Resolution(min_pixels=28 * 28, max_pixels=200_704)
    assert load_for_model(page_ref(pdf, 1), small).size == smart_resize(3300, 2550, small)[::-1]


def test_a_rotated_page_is_drawn_upright(tmp_path: Path) -> None:
    import pypdfium2 as pdfium

    pdf = make_pdf(tmp_path / "a.pdf", 1)
    document = pdfium.PdfDocument(str(pdf))
    document[0].set_rotation(90)
    document.save(str(tmp_path / "rotated.pdf"))
    document.close()
    image = render_page(tmp_path / "rotated.pdf", 1, Resolution())
    assert image.width > image.height  # landscape, as a viewer shows it


def test_unreadable_pdfs_and_missing_pages_are_image_errors(tmp_path: Path) -> None:
    (tmp_path / "garbage.pdf").write_bytes(b"%PDF-1.4\nnot really a pdf")
    with pytest.raises(ImageError, match="not a readable PDF"):
        load_for_model(tmp_path / "garbage.pdf", Resolution())
    locked = encrypted_pdf(tmp_path / "locked.pdf")
    assert discover_images([locked]) == [locked]  # listed whole, reported when it is read
    with pytest.raises(ImageError, match=r"locked\.pdf: encrypted \(a password is needed\)"):
        load_for_model(locked, Resolution())
    pdf = make_pdf(tmp_path / "a.pdf", 2)
    with pytest.raises(ImageError, match="no page 3"):
        render_page(pdf, 3, Resolution())
    with pytest.raises(ImageError, match="positive"):
        render_page(pdf, 1, Resolution(), dpi=0)
    with pytest.raises(ImageError, match="more than 1000 pixels"):
        render_page(pdf, 1, Resolution(), max_image_pixels=1000)
    with pytest.raises(ConfigError, match="--pdf-dpi"):
        ExtractConfig(server="http://127.0.0.1:1/v1", pdf_dpi=-1)


def test_extract_sends_each_page_and_reports_a_broken_pdf_without_losing_the_rest(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    make_pdf(docs / "manifests.pdf", 2)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 4)
    page(7, (420, 300)).save(docs / "photo.png")
    with FakeOpenAI() as fake:
        result, rows = run(fake, [docs], tmp_path)
        assert (result.total, result.ok, result.failed) == (4, 3, 1)
        by_name = {Path(r["file"]).name: r for r in rows}
        assert set(by_name) == {"broken.pdf", "manifests.pdf#page=1", "manifests.pdf#page=2", "photo.png"}
        assert by_name["broken.pdf"]["error"].startswith("image_error:")
        assert "not a readable PDF" in by_name["broken.pdf"]["error"]
        assert all(by_name[f"manifests.pdf#page={n}"]["json"] == manifest() for n in (1, 2))
        sizes = sorted(fake.image_sizes())
        assert sizes.count((868, 1120)) == 2  # both pages at the default contract's size of a 300 dpi scan
        # A rerun resumes page by page: nothing is asked again, the broken PDF's row is final.
        again, _ = run(fake, [docs], tmp_path)
        assert (again.skipped, again.attempted) == (4, 0)
        assert len(fake.requests) == 3


def test_a_pdf_is_parsed_once_for_all_its_pages_and_again_when_its_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import vlmocr.pdf as pdf_module

    opened: list[Path] = []
    real_open = pdf_module._open

    def counting_open(path: Path):
        opened.append(path)
        return real_open(path)

    monkeypatch.setattr(pdf_module, "_open", counting_open)
    pdf = make_pdf(tmp_path / "long.pdf", 3)
    pages = discover_images([pdf])
    images = [load_for_model(p, Resolution()) for p in pages]
    assert len(images) == 3 and opened == [pdf]  # listed and drawn from one parse
    assert images[0].tobytes() != images[2].tobytes()  # and still each its own page

    other = make_pdf(tmp_path / "other.pdf", 1)
    assert len(discover_images([other, pdf])) == 4
    make_pdf(pdf, 5)  # rewritten in place: more pages, other bytes
    assert len(discover_images([pdf])) == 5
    assert opened.count(pdf) == 3  # reopened after another PDF, and after the rewrite
    pdf.unlink()
    with pytest.raises(ImageError, match="file not found"):
        render_page(pdf, 1, Resolution())


def test_the_kept_pdf_is_closed_at_exit_without_a_warning(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "a.pdf", 2)
    # A weakref finalizer made before pypdfium2 is imported (a temporary folder) puts the interpreter's
    # finalizer pass after PDFium's shutdown hook, which warns of every document still open.
    script = ("import sys, tempfile; folder = tempfile.TemporaryDirectory()\n"
              "from pathlib import Path\nfrom vlmocr.pdf import count_pages\n"
              "print(count_pages(Path(sys.argv[1])))")
    done = subprocess.run([sys.executable, "-c", script, str(pdf)], check=False, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"
    assert "still open" not in done.stderr
