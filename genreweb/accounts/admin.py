from django.contrib import admin, messages
from django.http import HttpRequest

from genreweb.accounts.models import Invitation


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Staff make invitation links here (GENREWEB_SIGNUP=invite): each signs up one account."""

    list_display = ("__str__", "email", "state", "expires_at", "created_by", "used_by", "link")
    fields = ("email", "expires_at", "link", "created_by", "used_at", "used_by")
    readonly_fields = ("link", "created_by", "used_at", "used_by")

    @admin.display(description="link")
    def link(self, invitation: Invitation) -> str:
        return invitation.get_absolute_url() if invitation.pk else "made when saved"

    def save_model(self, request: HttpRequest, obj: Invitation, form: object, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        if not change:
            url = request.build_absolute_uri(obj.get_absolute_url())
            self.message_user(
                request,
                f"Send this link; it signs up one account until "
                f"{obj.expires_at:%Y-%m-%d %H:%M %Z}: {url}",
                messages.SUCCESS,
            )
