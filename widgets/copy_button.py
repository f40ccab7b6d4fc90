"""CopyButton: a button that puts a text on the clipboard, in the browser.

ipywidgets has no clipboard access, so this is a small anywidget: the text goes to the
browser in the widget's state (as a Text widget's value would) and is copied there on
click; ``clear()`` wipes it (SecretReveal does that on dismiss)."""

from __future__ import annotations

import anywidget
import traitlets

_ESM = """
function render({ model, el }) {
  const button = document.createElement("button");
  button.className = "jupyter-button widget-button enb-copy";
  button.type = "button";
  const label = () => { button.textContent = model.get("label"); };
  label();
  model.on("change:label", label);
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(model.get("text"));
      model.set("copied", model.get("copied") + 1);
    } catch (err) {
      model.set("failed", String(err));
    }
    model.save_changes();
  });
  el.appendChild(button);
}
export default { render };
"""


class CopyButton(anywidget.AnyWidget):
    """Copies ``text`` to the clipboard when clicked; ``copied`` counts the copies made
    (set by the browser), ``failed`` says why the last copy failed (clipboard refused)."""

    _esm = _ESM
    text = traitlets.Unicode("").tag(sync=True)
    label = traitlets.Unicode("Copy").tag(sync=True)
    copied = traitlets.Int(0).tag(sync=True)
    failed = traitlets.Unicode("").tag(sync=True)

    def clear(self) -> None:
        self.text = ""
        self.failed = ""

    def __repr__(self) -> str:
        return f"<CopyButton {self.label!r}>"  # never the text: it may be a secret
