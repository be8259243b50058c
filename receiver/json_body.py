"""A small JSON request body read into a pydantic model: the admin's and the partners' forms."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from receiver.errors import ApiError
from receiver.receipts import read_bounded
from sync.receipt_contract import ReceiptInvalid, decode_json, json_path, message

Model = TypeVar("Model", bound=BaseModel)


async def read_model(request: Request, model: type[Model], *, max_bytes: int, noun: str) -> Model:
    """The JSON body as `model`. Raises ApiError 400/413/415/422 naming the field (nothing is
    stored); `noun` names the body in messages ("the company", "the body")."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not (media == "application/json" or media.endswith("+json")):
        raise ApiError(415, "unsupported_media_type", f"send {noun} as application/json")
    try:
        data = decode_json(await read_bounded(request, max_bytes))
    except ReceiptInvalid as exc:
        raise ApiError(exc.status, exc.code, exc.message) from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = json_path(error["loc"])
        if field is None:
            raise ApiError(422, "invalid_field", f"{noun} must be a JSON object") from None
        raise ApiError(422, "invalid_field", f"{field}: {message(error)}", field=field) from None
