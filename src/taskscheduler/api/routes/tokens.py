"""``/v1/tokens``: create, list, grant and revoke API tokens (admin scope)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from taskscheduler import tokens
from taskscheduler.api import auth, schemas
from taskscheduler.api.routes import ERRORS, NOT_FOUND

router = APIRouter(prefix="/v1/tokens", tags=["tokens"], responses=ERRORS)
TokenId = Annotated[str, Path(max_length=64, description="The token's id.")]


@router.post("", status_code=201, response_model=tokens.NewToken, name="token.create")
async def create_token(body: schemas.TokenCreate, request: Request) -> tokens.NewToken:
    """Create a token; its secret is in this answer only."""
    return await tokens.create(
        request.app.state.engine,
        name=body.name,
        scope=body.scope,
        pools=body.pools,
        secrets=body.secrets,
        actor=auth.principal(request).actor,
        request_id=request.state.request_id,
    )


@router.get("", response_model=list[tokens.TokenInfo], name="token.list")
async def list_tokens(request: Request) -> list[tokens.TokenInfo]:
    """Every token, revoked ones included, never their secrets."""
    return await tokens.list_tokens(request.app.state.engine)


@router.patch(
    "/{token_id}", response_model=tokens.TokenInfo, name="token.grant", responses=NOT_FOUND
)
async def grant_token(
    token_id: TokenId, body: schemas.TokenGrant, request: Request
) -> tokens.TokenInfo:
    """Replace the work pools, the Secret blocks or both that a non-admin token's tasks may
    use; from its next call on."""
    return await tokens.grant(
        request.app.state.engine,
        token_id,
        pools=body.pools,
        secrets=body.secrets,
        actor=auth.principal(request).actor,
        request_id=request.state.request_id,
    )


@router.delete("/{token_id}", status_code=204, name="token.revoke", responses=NOT_FOUND)
async def revoke_token(token_id: TokenId, request: Request) -> Response:
    """Revoke a token for good."""
    await tokens.revoke(
        request.app.state.engine,
        token_id,
        actor=auth.principal(request).actor,
        request_id=request.state.request_id,
    )
    return Response(status_code=204)
