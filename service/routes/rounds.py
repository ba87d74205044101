"""``/studies/{id}/rounds``: the rounds so far, a preview of the next, and opening it now."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/studies/{study_id}/rounds", tags=["rounds"])
