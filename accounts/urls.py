from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import email_confirmation, login, logout, password_reset, views, views_profile

urlpatterns = [
    path("login/", login.LoginView.as_view(), name="login"),
    path("logout/", logout.LogoutView.as_view(), name="logout"),
    path(
        "password/",
        login.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "password/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("password/forgotten/", password_reset.forgot_password, name="password_forgotten"),
    path(
        "reset/<uidb64>/<token>/",
        password_reset.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("signup/<str:token>/", views.signup, name="signup"),
    path("invites/", views.invites, name="invites"),
    path("invites/<int:pk>/revoke/", views.revoke_invite, name="revoke_invite"),
    path("members/<int:pk>/reset-link/", views.make_reset_link, name="make_reset_link"),
    path("me/", views_profile.profile, name="profile"),
    path("me/email/", views_profile.change_email, name="change_email"),
    path(
        "me/email/send-confirmation/",
        email_confirmation.send_again,
        name="send_email_confirmation",
    ),
    path("email/confirm/<uidb64>/<token>/", email_confirmation.open_link, name="confirm_email"),
    path("me/claim/", views_profile.claim, name="claim_speaker"),
    path("me/speakers/<int:pk>/opt-out/", views_profile.opt_out, name="opt_out"),
    path("me/speakers/<int:pk>/game/", views_profile.game_opt_in, name="game_opt_in"),
    path("me/speakers/<int:pk>/delete/", views_profile.delete_messages, name="delete_messages"),
    path("me/delete-account/", views_profile.delete_account, name="delete_account"),
    path("claims/", views_profile.claims, name="claims"),
    path("claims/<int:pk>/decide/", views_profile.decide_claim, name="decide_claim"),
    path("speakers/<int:pk>/unlink/", views_profile.unlink, name="unlink_speaker"),
]
