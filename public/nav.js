// On the plain pages (privacy policy, payment support) opened from the Mini App: Telegram's
// BackButton returns to the app.
(function () {
  var app = window.Telegram && window.Telegram.WebApp;
  if (!app || !app.initData || !app.isVersionAtLeast('6.1')) return;
  app.ready();
  app.BackButton.show();
  app.BackButton.onClick(function () { history.back(); });
})();
